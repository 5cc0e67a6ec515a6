"""Progress you can follow: cells i of N, elapsed time, an estimate; on by default in Python."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.benchmark.runner import Run
from fednot.config import EvalConfig
from fednot.federation.fedavg import RoundRecord
from fednot.progress import Progress, Silent, clock_text
from fednot.testing import tiny_config, tiny_federation

torch.set_num_threads(1)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _record(round_: int) -> RoundRecord:
    return RoundRecord(
        round=round_,
        clients=(0,),
        train_loss=0.5,
        val_acc=90.0,
        comm_bytes=0,
        flops=0,
        seconds=1.0,
    )


def test_clock_text() -> None:
    assert [clock_text(s) for s in (0, 9.6, 75, 3600 + 62)] == ["0:00", "0:10", "1:15", "1:01:02"]


def test_cells_count_and_the_estimate_comes_after_the_first_cell() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, clock=clock)
    progress.plan(4)
    clock.now += 5
    progress.phase("seed 0: pretrain")
    clock.now += 15
    progress.cell_done("original: retain 90.00")
    progress.phase("seed 0: Retrain")
    clock.now += 5
    progress.phase("seed 0: retrain (FedAvg)")  # the estimate counts down within a cell
    clock.now += 15
    progress.cell_done("Retrain: retain 91.00")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "==> seed 0: pretrain  [cell 1/4 | 0:05 elapsed]"
    assert "estimate" not in lines[0]
    assert lines[1] == (
        "    original: retain 90.00  [1/4 cells done | 0:20 elapsed | "
        "run about 1:00 left (estimate)]"
    )  # 20 s per cell, 3 cells left
    assert lines[2] == (
        "==> seed 0: Retrain  [cell 2/4 | 0:20 elapsed | run about 1:00 left (estimate)]"
    )
    assert lines[3].endswith("[cell 2/4 | 0:25 elapsed | run about 0:55 left (estimate)]")
    assert lines[4].endswith("[2/4 cells done | 0:40 elapsed | run about 0:40 left (estimate)]")


def test_a_resumed_run_counts_the_cells_done_before_and_times_only_its_own() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, clock=clock)
    progress.plan(6, done=3, jobs=2)  # worker processes: cells done, not "cell i"
    progress.phase("2 cells to run")
    clock.now += 30
    progress.cell_done("FT")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "==> 2 cells to run  [3/6 cells done | 0:00 elapsed]"
    assert lines[1].endswith("[4/6 cells done | 0:30 elapsed | run about 1:00 left (estimate)]")


def test_round_lines_estimate_the_phase_and_come_at_a_modest_rate_off_a_terminal() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, every=10, interval=5.0, clock=clock)
    progress.phase("seed 0: pretrain")
    for round_ in range(1, 26):
        clock.now += 2
        progress.round("pretrain", _record(round_), 25)
    rounds = [line for line in stream.getvalue().splitlines() if "round" in line]
    written = [int(line.split("round")[1].split("/")[0]) for line in rounds]
    assert written == [1, 4, 7, 10, 13, 16, 19, 20, 23, 25]  # 1, every 10th, each 5 s, the last
    assert "\r" not in stream.getvalue()
    assert "phase about 0:48 left (estimate)" in rounds[0]  # 2 s per round, 24 rounds left
    assert "phase about" not in rounds[-1]  # the budget is spent


def test_a_terminal_redraws_one_line_and_keeps_each_phases_last_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    stream, clock = Terminal(), Clock()
    progress = Progress(stream, clock=clock)
    progress.phase("seed 0: ft")
    for round_ in (1, 2, 3):
        clock.now += 1
        progress.note("evaluating a trajectory point")
        progress.round("ft", _record(round_), 3)
    progress.info("ft: budget of 3 rounds")
    text = stream.getvalue()
    assert text.count("\r") == 6  # three notes and three rounds, redrawn in place
    redrawn = text.split("\n")[1].split("\r")
    assert "round   3/3" in redrawn[-1]
    # fitted to the terminal's 100 columns: the time elapsed goes first, the estimate stays
    assert redrawn[2].endswith("(1.0 s)  [phase about 0:02 left (estimate)]")
    assert all(len(line) <= 99 for line in redrawn)
    assert text.endswith("\n    ft: budget of 3 rounds\n")


def test_silent_writes_nothing() -> None:
    stream = io.StringIO()
    progress = Silent(stream)
    progress.plan(2)
    progress.phase("x")
    progress.note("y")
    progress.round("ft", _record(1), 1)
    progress.cell_done("z")
    assert stream.getvalue() == "" and progress.done == 1


def test_the_python_api_reports_progress_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    exp = Experiment(tiny_config(), 0)  # reads the data: says so first
    exp.evaluate(exp.pretrain().state)
    err = capsys.readouterr().err
    assert err.startswith("==> seed 0: loading data (mnist5k)")
    assert "==> seed 0: pretrain (FedAvg" in err and "[pretrain] round   2/2" in err
    assert "==> seed 0: evaluating" in err
    Experiment(tiny_config(), 0, federation=tiny_federation(), progress=Silent()).pretrain()
    assert capsys.readouterr().err == ""


def test_a_run_counts_its_cells_and_estimates_the_time_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eval_ = EvalConfig(
        mia_folds=2, mia_repeats=2, mia_null_permutations=0, curve_every=1, retrain_floor=True
    )
    Run(tiny_config(eval=eval_), tmp_path / "run").execute()  # progress on by default
    err = capsys.readouterr().err
    # original, Retrain, Retrain′, FT, NoT
    assert "==> seed 0: original (before unlearning)  [cell 1/5 | " in err
    assert "==> seed 0: Retrain′ (another training seed)  [cell 3/5 | " in err
    assert "==> seed 0: NoT  [cell 5/5 | " in err
    assert err.count("cells done") == 5 and "[5/5 cells done | " in err
    assert "run about" in err and "left (estimate)" in err
    assert "loading data" in err and err.count("==> seed 0: evaluating") == 5
    Run(tiny_config(eval=eval_), tmp_path / "quiet", progress=Silent()).execute()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("make", ["experiment", "run"])
def test_the_configured_thread_count_is_applied_in_python(tmp_path: Path, make: str) -> None:
    config = tiny_config(threads=1)
    try:
        torch.set_num_threads(2)
        if make == "experiment":
            Experiment(config, 0, federation=tiny_federation(), progress=Silent())
        else:
            Run(config, tmp_path / "run", progress=Silent())
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        Experiment(replace(config, threads=None), 0, federation=tiny_federation())
        assert torch.get_num_threads() == 2  # no count configured: torch's stays
    finally:
        torch.set_num_threads(1)
