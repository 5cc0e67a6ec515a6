"""The worked example under examples/custom runs as its README says (`fednot run` and `bench`)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from fednot.cli.app import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom"


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example folder as the working folder (its outputs stay out of the repo)."""
    folder = tmp_path / "custom"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the cwd the resolver adds is undone
    for name in [m for m in sys.modules if m == "tinyext" or m.startswith("tinyext.")]:
        monkeypatch.delitem(sys.modules, name)
    return folder


def test_the_example_runs_and_benches(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-c", "config.toml", "--out", "run"]) == 0
    results = json.loads((example / "run" / "results.json").read_text())
    methods = {r["method"] for r in results["records"]}
    assert methods == {"original", "retrain", "retrain_prime", "ft", "not"}
    not_ = next(r for r in results["records"] if r["method"] == "not")
    assert not_["notes"]["negated_layers"] == ["stem"]
    trained = next(r for r in results["records"] if r["method"] == "original")
    assert trained["test_acc"] > 50  # the tiny model learns the tiny data (4 classes)

    args = ["bench", "-c", "config.toml", "--methods", "retrain,ft,not", "--seeds", "0,1"]
    assert main([*args, "--out", "bench"]) == 0
    summary = json.loads((example / "bench" / "results.json").read_text())["summary"]
    assert {row["method"] for row in summary} >= {"retrain", "ft", "not"}
    assert "\nNoT " in capsys.readouterr().out
