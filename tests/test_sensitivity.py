"""`fednot analyze sensitivity`: every method at every recovery learning rate, resumable."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fednot.analysis.common import Study
from fednot.analysis.sensitivity_report import Point, best_rates, comparisons, good_range, report
from fednot.cli.app import main
from fednot.testing import tiny_cli_settings, tiny_config
from fednot.tune.objective import ValidationBench

TINY = [
    *tiny_cli_settings((0, 1)),
    "-q",
]
RATES = "0.01,0.05,1e6"  # 1e6 diverges


def _run(out: Path, cache: Path, *extra: str, threads: int = 1, jobs: int = 1) -> int:
    return main(
        [
            "analyze",
            "sensitivity",
            *TINY,
            "--threads",
            str(threads),
            "--set",
            f"cache_dir={cache}",
            "--param",
            "methods=ft,not",
            "--param",
            f"lrs={RATES}",
            "--param",
            f"jobs={jobs}",
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def studied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sensitivity")
    assert _run(root / "out", root / "cache") == 0
    return root


def _data(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "sensitivity.json").read_text())
    return data


def test_every_method_rate_and_seed_is_read_and_divergence_is_kept(studied: Path) -> None:
    data = _data(studied / "out")
    assert data["lrs"] == [0.01, 0.05, 1e6] and data["seeds"] == [0, 1]
    for method in ("ft", "not"):
        for rate in ("0.01", "0.05"):
            cells = data["runs"][method][rate]
            assert set(cells) == {"0", "1"}
            assert all(c["gap"] >= 0 and c["error"] == "" for c in cells.values())
            assert set(cells["0"]["metrics"]) == {"retain_acc", "forget_acc", "test_acc", "mia"}
        diverged = data["runs"][method]["1000000.0"]
        assert all(c["gap"] is None and c["error"] for c in diverged.values())
    assert set(data["floor"]) == {"0", "1"} and all(e["gap"] >= 0 for e in data["floor"].values())
    # the rate changes the outcome: a test that the rate reaches the recovery
    assert data["runs"]["ft"]["0.01"]["0"]["gap"] != data["runs"]["ft"]["0.05"]["0"]["gap"]
    report = (studied / "out" / "sensitivity.md").read_text()
    assert "| *2/2 div.* |" in report and "sensitivity.png" in report
    assert (studied / "out" / "sensitivity.png").stat().st_size > 10_000
    assert (studied / "out" / "config.toml").exists()


def test_a_cell_reads_what_the_tuners_objective_reads(studied: Path) -> None:
    """The gap at a rate is the tuner's objective for that method at that rate, seed by seed."""
    from fednot.configio import load_config
    from fednot.tune.validation import ValidationRequest, validation_config
    from fednot.unlearning.registry import create_unlearner

    reported = load_config(studied / "out" / "config.toml")
    config = validation_config(reported, ["ft"], ValidationRequest((0,), (0, 1)))
    config = replace(config, data=reported.data)  # the reported test set, not the tuner's
    assert not config.data.holdout_test
    bench = ValidationBench(config, [create_unlearner("ft")])
    result = bench.run("ft", {"recovery_lr": 0.05}, seeds=(1,))
    assert result.gaps == {1: _data(studied / "out")["runs"]["ft"]["0.05"]["1"]["gap"]}


def test_the_same_command_resumes_without_running_a_cell(
    studied: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a finished cell ran again")

    before = _data(studied / "out")
    # a file written before a configuration field existed (here data.holdout_test) still resumes
    older = json.loads(json.dumps(before))
    del older["config"]["data"]["holdout_test"]
    (studied / "out" / "sensitivity.json").write_text(json.dumps(older))
    monkeypatch.setattr(ValidationBench, "run", refuse)
    assert _run(studied / "out", studied / "cache") == 0
    assert _data(studied / "out")["runs"] == before["runs"]


def test_two_jobs_read_what_one_process_reads(studied: Path, tmp_path: Path) -> None:
    assert _run(tmp_path / "two", studied / "cache", threads=2, jobs=2) == 0
    assert _data(tmp_path / "two")["runs"] == _data(studied / "out")["runs"]


def test_another_configuration_in_the_same_folder_is_refused(
    studied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(studied / "out", studied / "cache", "--set", "unlearn.recovery_rounds=2")
    assert code == 2
    assert "another configuration" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("methods=fedeaser", "Unknown"),
        ("methods=retrain", "no recovery learning rate"),
        ("lrs=-1", "positive learning rates"),
        ("lrs=abc", "expected comma-separated learning rates"),
        ("jobs=0", "jobs >= 1"),
    ],
)
def test_bad_parameters_are_refused_before_any_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], param: str, message: str
) -> None:
    code = main(["analyze", "sensitivity", *TINY, "--param", param, "--out", str(tmp_path / "o")])
    assert code == 2
    assert message.lower() in capsys.readouterr().err.lower()
    assert not (tmp_path / "o" / "sensitivity.json").exists()


def _study(runs: dict[str, dict[str, dict[str, float | None]]]) -> dict[str, Any]:
    return {
        "methods": list(runs),
        "lrs": [0.01, 0.02, 0.04],
        "seeds": [0, 1, 2],
        "floor": {},
        "runs": {
            m: {r: {s: {"gap": g} for s, g in cells.items()} for r, cells in per.items()}
            for m, per in runs.items()
        },
    }


def test_the_best_rate_skips_a_rate_where_a_seed_diverged() -> None:
    data = _study(
        {
            "ft": {
                "0.01": {"0": 2.0, "1": 2.2, "2": 2.1},
                "0.02": {"0": 0.1, "1": None, "2": 0.1},  # lowest, but a seed diverged
                "0.04": {"0": 1.0, "1": 1.1, "2": 1.3},
            },
            "not": {
                "0.01": {"0": 0.5, "1": 0.6, "2": 0.4},
                "0.02": {"0": 0.9, "1": 0.8, "2": 1.0},
                "0.04": {"0": 3.0, "1": 3.5, "2": 3.1},
            },
        }
    )
    best = best_rates(data)
    assert best["ft"] is not None and best["ft"].lr == 0.04
    assert best["not"] is not None and best["not"].lr == 0.01
    [test] = comparisons(best, "not")
    assert test.method == "ft" and test.seeds == 3
    assert test.difference.mean == pytest.approx((1.0 + 1.1 + 1.3 - 0.5 - 0.6 - 0.4) / 3)
    assert test.p_holm == test.p  # one comparison: Holm changes nothing
    assert good_range(data, "ft", best["ft"]) == [0.04]  # 0.01 is clearly worse
    assert 0.01 in good_range(data, "not", Point(0.01, {"0": 0.5, "1": 0.6, "2": 0.4}, ()))
    study = Study(tiny_config(), Path("unused"))
    row = next(line for line in report(study, data, best).splitlines() if line.startswith("| FT"))
    assert row == "| FT | 2.10 ± 0.25 | *1/3 div.* (the others: 0.10) | 1.13 ± 0.38 |"
