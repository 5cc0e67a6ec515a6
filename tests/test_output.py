"""Output you can read and share: the terminal summary, statements said once, no paired table
for one seed, run-level warnings, file modes under the umask, SVG figures,
`fednot.benchmark.results.load`.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from fednot.benchmark.caveats import MIA_FLOOR_LIMIT, caveats
from fednot.benchmark.comparison import summarize
from fednot.benchmark.plots import pyplot, tradeoff_chart
from fednot.benchmark.report import report_markdown
from fednot.benchmark.results import MissingExtraError, Record, json_safe, load, with_gaps
from fednot.benchmark.runlog import CellKey, CellLog, RoundLog
from fednot.benchmark.statements import statements
from fednot.benchmark.summary import MethodSummary
from fednot.benchmark.tradeoff import CurvePoint
from fednot.cli.app import main
from fednot.cli.terminal import WIDTH, terminal_summary
from fednot.config import RunConfig
from fednot.errors import ConfigError
from fednot.store.cache import atomic_write_text
from fednot.testing import sample_record, set_args

torch.set_num_threads(1)

RETRAIN = {"retain_acc": 100.0, "forget_acc": 96.0, "test_acc": 97.0, "mia": 50.0}
TITLES = {
    "original": "original (before unlearning)",
    "retrain": "Retrain",
    "retrain_prime": "Retrain′ (another training seed)",
    "not": "NoT",
    "ft": "FT",
    "not_wb": "NoT (w+b)",
    "federaser": "FedEraser",
}
METHODS = ("ft", "federaser", "fukd", "pgd", "mode", "fcu", "puf", "negsub", "not", "not_wb")


def _record(method: str, seed: int, forget: float, **extra: Any) -> Record:
    fields: dict[str, Any] = dict(title=TITLES.get(method, method.upper()), **RETRAIN)
    fields |= dict(mia_std=0.0, val_acc=97.0, comm_bytes=900, flops=9, rounds=9, mia_floor=1.5)
    return sample_record(method, seed, **{**fields, "forget_acc": forget, **extra})


def _records(
    offsets: dict[str, list[float]],
    *,
    original: list[float],
    floor: list[float] | None = None,
    mia_floor: float = 1.5,
) -> tuple[list[Record], dict[CellKey, CellLog]]:
    """Per seed: Retrain, the original, Retrain′ (``floor``) and each method's 9-round run.

    A method's forget accuracy is 96 + offset × (10 − r) after round r; each round costs 100
    bytes and 1 FLOP against Retrain's 1000 and 10, so communication and FLOPs fractions read
    the same round. The original and Retrain′ are off by ``original[s]`` and ``floor[s]``.
    """
    records: list[Record] = []
    logs: dict[CellKey, CellLog] = {}
    for seed in range(len(original)):
        records.append(
            _record("retrain", seed, 96.0, comm_bytes=1000, flops=10, mia_floor=mia_floor)
        )
        records.append(_record("original", seed, 96.0 + 4 * original[seed], comm_bytes=0, flops=0))
        if floor is not None:
            extra = {"comm_bytes": 1000, "flops": 10}
            records.append(_record("retrain_prime", seed, 96.0 + 4 * floor[seed], **extra))
        for method, values in offsets.items():
            curve = [96.0 + values[seed] * (10 - r) for r in range(10)]
            records.append(_record(method, seed, curve[-1]))
            point = [{**RETRAIN, "forget_acc": forget} for forget in curve]
            rounds = tuple(RoundLog(r, (), 0.0, 0.0, 100, 1, 0.0, point[r]) for r in range(1, 10))
            logs[CellKey(method, seed)] = CellLog({**RETRAIN, "forget_acc": curve[0]}, "", rounds)
    return with_gaps(records), logs


def _bench_summary(seeds: int = 3, **kwargs: Any) -> list[MethodSummary]:
    """13 rows, as the default bench: the original, Retrain, Retrain′ and ten methods."""
    offsets = {m: [0.1 * (k + 1) + 0.03 * s for s in range(seeds)] for k, m in enumerate(METHODS)}
    kwargs.setdefault("original", [0.5 + 0.1 * s for s in range(seeds)])
    kwargs.setdefault("floor", [0.2 + 0.05 * s for s in range(seeds)])
    return summarize(*_records(offsets, **kwargs))


def test_terminal_summary_is_compact_and_says_where_the_full_table_is(tmp_path: Path) -> None:
    summary = _bench_summary()
    text = terminal_summary(RunConfig(), summary, tmp_path)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH  # the old table: 15+ columns, 238 wide
    rows = [
        line
        for line in lines
        if line.startswith(("original", "Retrain", *(TITLES.get(m, m.upper()) for m in METHODS)))
    ]
    assert len(rows) == 13 and all(len(line) <= 90 for line in rows)
    ft = next(line for line in rows if line.startswith("FT "))
    gap = next(row for row in summary if row.method == "ft").avg_gap
    assert gap is not None and f"{gap.mean:.2f} ± {gap.half_width:.2f}" in ft
    assert ft.split()[-1] == "0.90"  # communication relative to Retrain
    assert "gap @ comm." in text and "gap @ FLOPs" in text
    assert str(tmp_path / "results.md") in text.replace("\n", " ")


def test_a_comparison_is_stated_once_even_where_two_points_read_the_same_round() -> None:
    summary = _bench_summary(seeds=5)
    text = statements(summary, 9)
    ft = next(row for row in summary if row.method == "ft").paired["not"]
    for key in ("comm25", "flops25"):
        point = ft[key]
        assert point is not None and point.p < 0.05  # a lead at both points, the same numbers
    entry = ft["comm25"]
    assert entry is not None
    numbers = f"({entry.mean:+.2f} [{entry.low:+.2f}, {entry.high:+.2f}]"
    assert text.count(numbers) == 1  # the old statements listed it at 25 % comm. and FLOPs
    assert "the same readings at 25 % of Retrain's training FLOPs" in text
    assert text.count("Primary, at the end of the common budget") == 3  # NoT, FT, Retrain′


def test_one_seed_gets_one_line_instead_of_paired_comparisons(tmp_path: Path) -> None:
    summary = _bench_summary(seeds=1)
    config = replace(RunConfig(), seeds=(0,))
    report = report_markdown(config, summary)
    assert "## Paired differences" not in report and "(1 seed)" not in report
    assert report.count("paired comparisons need ≥ 2 seeds") == 1
    printed = terminal_summary(config, summary, tmp_path)
    assert "(1 seed)" not in printed
    assert printed.replace("\n  ", " ").count("paired comparisons need ≥ 2 seeds") == 1


def test_nothing_to_forget_is_warned_when_the_original_is_within_retrain_noise(
    tmp_path: Path,
) -> None:
    close = _bench_summary(original=[0.1, 0.2, 0.15], floor=[0.3, 0.2, 0.4])
    assert [c.title for c in caveats(close)] == ["Nothing to forget"]
    report = report_markdown(RunConfig(), close)
    assert "## Warnings" in report and "**Nothing to forget.**" in report
    assert "Nothing to forget." in terminal_summary(RunConfig(), close, tmp_path)
    far = _bench_summary(original=[2.0, 2.2, 2.1], floor=[0.3, 0.2, 0.4])
    assert caveats(far) == [] and "## Warnings" not in report_markdown(RunConfig(), far)
    # without Retrain′: every Δ of the original contains 0 (here, the forget accuracy's does)
    assert [c.title for c in caveats(_bench_summary(original=[0.2, -0.2, 0.1], floor=None))] == [
        "Nothing to forget"
    ]
    assert caveats(_bench_summary(original=[2.0, 2.2, 2.1], floor=None)) == []


def test_a_forget_set_too_small_for_the_mia_is_warned() -> None:
    far = {"original": [2.0, 2.2, 2.1], "floor": [0.3, 0.2, 0.4]}
    wide = _bench_summary(**far, mia_floor=MIA_FLOOR_LIMIT + 1)
    (caveat,) = caveats(wide)
    assert caveat.title == "Forget set too small for the MIA" and "±6.0 points" in caveat.text
    assert caveats(_bench_summary(**far, mia_floor=MIA_FLOOR_LIMIT)) == []


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_atomic_writes_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    atomic_write_text("x", tmp_path / "a.txt")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    os.umask(0o027)
    atomic_write_text("y", tmp_path / "a.txt")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary file left


FAST = [
    *set_args(
        "data.num_clients=3",
        "model.name=mlp",
        "model.options.hidden=[16]",
        "train.rounds=2",
        "train.batch_size=64",
        "unlearn.recovery_rounds=1",
        "eval.curve_every=1",
        "eval.mia_repeats=2",
        "eval.mia_null_permutations=4",
        'unlearn.methods=["retrain", "not"]',
    ),
]


def test_a_one_seed_run_prints_a_summary_and_writes_shareable_files(
    tmp_path: Path, umask_022: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    argv = ["run", *FAST, "--set", "seeds=[0]", "--set", f"cache_dir={cache}", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "\nNoT " in printed and "(1 seed)" not in printed and "| NoT |" not in printed
    assert "need ≥ 2 seeds" in printed.replace("\n  ", " ")
    shared = [out / n for n in ("results.json", "results.md", "results.csv", "config.toml")]
    shared += [*(out / "models").glob("*.pt"), *cache.glob("*.pt")]
    assert len(shared) > 6
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in shared} == {
        p.name: "0o644" for p in shared
    }
    for name in ("results", "tradeoff"):
        assert (out / f"{name}.png").exists()
        assert (out / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    report = (out / "results.md").read_text()
    assert "## Paired differences" not in report and "(1 seed)" not in report


def test_a_two_method_tradeoff_title_fits_its_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plt = pyplot()
    figures: list[Any] = []
    monkeypatch.setattr(plt, "close", figures.append)
    curve = [CurvePoint(r, r / 4, 2.0 - r / 4, 1.0, 3.0, 2) for r in range(5)]
    subtitle = "mnist5k / cnn, 10 clients (iid), clients [0] forgotten (client-wise), seeds [0, 1]"
    path = tmp_path / "tradeoff.png"
    tradeoff_chart({"ft": curve, "not": curve}, {"ft": "FT", "not": "NoT"}, path, subtitle=subtitle)
    (figure,) = figures
    renderer = figure.canvas.get_renderer()
    box = figure._suptitle.get_window_extent(renderer)
    assert box.x0 >= 0 and box.x1 <= figure.bbox.width  # the old title ran off both sides
    assert path.exists() and path.with_suffix(".svg").exists()
    monkeypatch.undo()
    plt.close(figure)


def _write_results(folder: Path) -> list[Record]:
    records, _ = _records({"not": [0.4, 0.5], "ft": [1.0, 1.1]}, original=[0.5, 0.6])
    records.append(
        Record.of_divergence(
            "mode", "MoDE", 0, scenario="client", requirements="", reason="loss became NaN"
        )
    )
    folder.mkdir()
    data = {"records": [r.to_dict() for r in records]}
    (folder / "results.json").write_text(json.dumps(json_safe(data)))
    return records


def test_load_returns_one_row_per_method_and_seed(tmp_path: Path) -> None:
    records = _write_results(tmp_path / "run")
    frame = load(tmp_path / "run")
    assert len(frame) == len(records) and {"method", "seed", "avg_gap", "comm_bytes"} <= set(
        frame.columns
    )
    assert "notes" not in frame.columns
    assert frame.loc[(frame.method == "ft") & (frame.seed == 1), "forget_acc"].item() == 96.0 + 1.1
    mode = frame[frame.method == "mode"].iloc[0]
    assert math.isnan(mode["avg_gap"]) and math.isnan(mode["forget_acc"]) and mode["diverged"]
    assert str(frame["asr"].dtype) == "float64"


def test_load_says_what_to_install_or_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="results.json does not exist; pass the folder"):
        load(tmp_path)
    _write_results(tmp_path / "run")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingExtraError, match="pip install pandas"):
        load(tmp_path / "run")
