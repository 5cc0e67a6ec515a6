"""The ablations and analyses run end to end on tiny data and write what they promise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fednot.analysis.common import Study
from fednot.analysis.layers import layer_variants
from fednot.analysis.recovery import rounds_within
from fednot.analysis.registry import analysis
from fednot.analysis.report import build_report, embed_images
from fednot.benchmark.trajectory import cost_keys
from fednot.cli.app import main
from fednot.config import UnlearnConfig
from fednot.errors import ConfigError
from fednot.models.layers import layer_graph
from fednot.models.registry import create_model
from fednot.testing import tiny_config, tiny_federation


def _study(tmp_path: Path, **options: str) -> Study:
    config = tiny_config(unlearn=UnlearnConfig(recovery_rounds=2), seeds=(0, 1))
    return Study(config, tmp_path / "out", options=options, federation=tiny_federation())


def test_layer_variants_cover_each_layer_the_first_two_and_all() -> None:
    graph = layer_graph(create_model("cnn", input_shape=(1, 28, 28), num_classes=10))
    variants = layer_variants(graph)
    assert variants["block1.conv"] == ("block1.conv",)
    assert variants["block1.conv + block2.conv"] == ("block1.conv", "block2.conv")
    assert variants["all layers"] == tuple(graph.names) and len(variants) == 7


def test_ablate_layers(tmp_path: Path) -> None:
    path = analysis("ablate", "layers")(_study(tmp_path))
    data = json.loads((tmp_path / "out" / "ablate_layers.json").read_text())
    labels = {"fc1", "fc2", "fc1 + fc2", "all layers"}
    assert set(data["summary"]) == labels and set(data["curves"]) == labels
    assert len(data["per_seed"]["fc1"]) == 2  # two seeds
    # one point per round (0 = right after negation), pooled over both seeds, cost increasing
    curve = data["curves"]["fc1"]
    assert [p["round"] for p in curve] == [0, 1, 2] and all(p["n"] == 2 for p in curve)
    assert curve[0]["x"] == 0.0 < curve[1]["x"] < curve[2]["x"]
    assert data["summary"]["fc1"]["avg_gap"]["n"] == 2
    assert set(data["per_seed"]["fc1"][0]["gap_at"]) == set(cost_keys())
    assert (tmp_path / "out" / "ablate_layers.png").stat().st_size > 10_000
    assert "ablate_layers.png" in path.read_text()


def test_ablate_forget_ratio(tmp_path: Path) -> None:
    study = _study(tmp_path, counts="1,2", methods="ft")
    analysis("ablate", "forget-ratio")(study)
    data = json.loads((tmp_path / "out" / "ablate_forget_ratio.json").read_text())
    assert set(data["summary"]) == {"retrain", "not", "ft"}
    assert set(data["summary"]["not"]) == {"1", "2"}
    assert (tmp_path / "out" / "ablate_forget_ratio.svg").exists()  # every figure also as SVG
    with pytest.raises(ConfigError, match="must lie in 1..2"):
        analysis("ablate", "forget-ratio")(_study(tmp_path, counts="3"))


def test_analyze_recovery(tmp_path: Path) -> None:
    study = _study(tmp_path)
    analysis("analyze", "recovery")(study)
    data = json.loads((tmp_path / "out" / "analyze_recovery.json").read_text())
    not_curve = data["curves"]["not"][0]
    assert [p["round"] for p in not_curve] == [0, 1, 2]
    assert {"retain_acc", "forget_acc", "test_acc", "mia"} <= set(not_curve[1])
    assert len(data["curves"]["retrain"][0]) == 1 + study.config.train.rounds
    assert "test_acc" in data["curves"]["retrain"][0][0]  # round 0: Retrain's initial weights
    assert not_curve[2]["comm_bytes"] > not_curve[1]["comm_bytes"] > not_curve[0]["comm_bytes"]


def test_rounds_within_by_hand() -> None:
    points = [
        {"round": 0, "test_acc": 10.0, "comm_bytes": 0, "flops": 0},
        {"round": 1, "test_acc": 89.1, "comm_bytes": 5, "flops": 7},
        {"round": 2, "test_acc": 89.5, "comm_bytes": 10, "flops": 14},
    ]
    assert rounds_within(points, 90.0, 1.0) == {"round": 1, "comm_bytes": 5, "flops": 7}
    assert rounds_within(points, 95.0, 1.0)["round"] is None
    assert rounds_within(points, 90.4, 1.0)["round"] == 2


def test_report_embeds_every_figure(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    (folder / "sub").mkdir(parents=True)
    (folder / "results.md").write_text("# Results\n\n![chart](results.png)\n")
    (folder / "results.png").write_bytes(b"\x89PNG fake")
    (folder / "sub" / "a.md").write_text("# A\n\n![missing](nothere.png) ![web](https://x/y.png)\n")
    path = build_report(folder)
    text = path.read_text()
    assert "data:image/png;base64," in text and "](results.png)" not in text
    assert "## Results" in text and "## A" in text and "sub/a.md" in text
    assert "](nothere.png)" in text and "https://x/y.png" in text  # left as they were
    assert embed_images("![x](none.png)", folder) == "![x](none.png)"
    with pytest.raises(ConfigError, match="holds no results"):
        build_report(_empty(tmp_path))
    damaged = tmp_path / "damaged"  # a run folder whose results.md is gone: resume, not restart
    damaged.mkdir()
    (damaged / "results.json").write_text("{not json")
    with pytest.raises(ConfigError, match="rerun the same `fednot run`/`bench` command"):
        build_report(damaged)


def _empty(tmp_path: Path) -> Path:
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty


def test_cli_report_and_unknown_analysis(tmp_path: Path) -> None:
    (tmp_path / "results.md").write_text("# R\n")
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").exists()
    assert main(["report", str(tmp_path / "nope")]) == 2
