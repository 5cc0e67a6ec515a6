"""`fednot bench --jobs`: cells in worker processes give the results of one process, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from fednot.benchmark.cells import Cell, CellPool, CellRunner, needs
from fednot.benchmark.results import ORIGINAL, REFERENCE, RETRAIN_FLOOR
from fednot.cli.app import main
from fednot.errors import ConfigError
from fednot.testing import set_args, tiny_config

torch.set_num_threads(1)

RUN = [
    "run",
    "-q",
    *set_args(
        "data.num_clients=3",
        "model.name=cnn",
        "model.options.channels=[4, 8]",
        "train.rounds=2",
        "train.batch_size=64",
        "unlearn.recovery_rounds=2",
        "eval.mia_repeats=2",
        "eval.mia_null_permutations=0",
        "eval.curve_every=1",
        'unlearn.methods=["retrain", "ft", "not"]',
        "seeds=[0, 1]",
    ),
]
TIMING = {"seconds", "cached"}


def _timeless(value: Any) -> Any:
    """``value`` without wall-clock times and cache flags, at any depth."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _bench(tmp_path: Path, name: str, *flags: str) -> dict[str, Any]:
    out, cache = tmp_path / name, tmp_path / f"cache-{name}"
    try:
        assert main([*RUN, "--set", f"cache_dir={cache}", "--out", str(out), *flags]) == 0
    finally:
        torch.set_num_threads(1)
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    return data


def test_two_jobs_give_the_results_of_one_process_bit_for_bit(tmp_path: Path) -> None:
    one = _bench(tmp_path, "one", "--threads", "1")
    two = _bench(tmp_path, "two", "--jobs", "2", "--threads", "2")  # one thread per worker
    assert two["config"]["threads"] == 1 == one["config"]["threads"]
    cells = [(r["seed"], r["method"]) for r in two["records"]]
    expected = [
        (s, m) for s in (0, 1) for m in ("original", "retrain", "retrain_prime", "ft", "not")
    ]
    assert cells == expected  # the order --jobs 1 writes, whatever order the cells finished in
    for key in ("records", "summary", "logs", "tradeoff", "requests"):
        assert _timeless(two[key]) == _timeless(one[key]), key
    model = torch.load(tmp_path / "two" / "models" / "not-seed1.pt", weights_only=True)
    same = torch.load(tmp_path / "one" / "models" / "not-seed1.pt", weights_only=True)
    assert all(torch.equal(model[k], same[k]) for k in same)


def test_a_cell_waits_for_the_cells_it_needs() -> None:
    assert needs(Cell(3, ORIGINAL)) == [] and needs(Cell(3, REFERENCE)) == []
    assert needs(Cell(3, RETRAIN_FLOOR)) == [Cell(3, REFERENCE)]
    assert needs(Cell(3, "not")) == [Cell(3, ORIGINAL), Cell(3, REFERENCE)]


def test_jobs_need_a_model_cache_and_a_positive_count(tmp_path: Path) -> None:
    runner = CellRunner(tiny_config(), {}, None)  # tiny_config has no cache
    with pytest.raises(ConfigError, match="through the model cache"):
        CellPool(runner, 2, 1)
    with pytest.raises(ConfigError, match="--jobs must be >= 1"):
        CellPool(runner, 0, 1)
    out = tmp_path / "run"
    assert main([*RUN, "--jobs", "0", "--out", str(out)]) == 2
    assert not out.exists()
