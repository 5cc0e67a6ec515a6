"""Trajectories the engine records: exact cost readings, the final model, and Retrain′."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from fednot.benchmark.experiment import Experiment
from fednot.benchmark.results import RETRAIN_FLOOR, Record
from fednot.benchmark.runlog import CellKey, CellLog, logs_from_json, logs_to_json
from fednot.benchmark.trajectory import budgets, trajectory
from fednot.cli.app import main
from fednot.config import EvalConfig, UnlearnConfig
from fednot.federation.costs import Costs
from fednot.metrics.gaps import GAP_METRICS
from fednot.testing import set_args, tiny_config, tiny_federation
from fednot.types import ForgetRequest

REQUEST = ForgetRequest(clients=(0,))
torch.set_num_threads(1)


def _experiment(**sections: object) -> Experiment:
    return Experiment(tiny_config(**sections), seed=0, federation=tiny_federation())


def _evaluated(outcome) -> list[int]:  # type: ignore[no-untyped-def]
    return [r.round for r in outcome.log.rounds if all(m in r.extra for m in GAP_METRICS)]


def test_the_final_model_is_a_trajectory_point_off_the_grid() -> None:
    exp = _experiment(
        eval=EvalConfig(curve_every=3, mia_folds=2, mia_repeats=2, mia_null_permutations=0),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=4),
    )
    outcome = exp.unlearn(exp.pretrain(), REQUEST, "ft")
    assert _evaluated(outcome) == [3, 4]  # the grid's round 3, and the final round 4
    retrain = exp.unlearn(exp.pretrain(), REQUEST, "retrain")  # 2 rounds, grid every 3
    assert _evaluated(retrain) == [2]


def test_a_run_stopped_by_patience_ends_with_its_final_model_evaluated() -> None:
    exp = _experiment(
        eval=EvalConfig(curve_every=50, mia_folds=2, mia_repeats=2, mia_null_permutations=0),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=40, recovery_patience=1),
    )
    outcome = exp.unlearn(exp.pretrain(), REQUEST, "ft")
    rounds = len(outcome.log.rounds)
    assert rounds < 40  # stopped by patience, off the grid of 50
    assert _evaluated(outcome) == [rounds]
    final = exp._curve_point(outcome.state, exp.split(REQUEST))
    assert {m: outcome.log.rounds[-1].extra[m] for m in GAP_METRICS} == final


def test_every_cost_point_is_read_at_its_last_round_whatever_the_grid() -> None:
    exp = _experiment(
        eval=EvalConfig(curve_every=100, mia_folds=2, mia_repeats=2, mia_null_permutations=0),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=7),
    )
    trained = exp.pretrain()
    retrain = exp.unlearn(trained, REQUEST, "retrain")
    reference = Costs(retrain.costs.comm_bytes * 3, retrain.costs.flops * 3)  # 7 rounds ≈ 1.17x
    outcome = exp.unlearn(trained, REQUEST, "ft", reference_costs=reference)
    log = CellLog.of(outcome.start, outcome.log)
    run = trajectory(log, step_comm_bytes=0, step_flops=0)
    for key, budget in budgets(reference.comm_bytes, reference.flops).items():
        kind = "flops" if key.startswith("flops") else "comm"
        within = [c.round for c in run.costs if c.cost(kind) <= budget]
        assert within[-1] in [p.round for p in run.points], key
    # per round 2 rounds' worth of Retrain's 2-round cost: 25 % of 6 rounds is round 1, 50 %
    # round 3, 100 % round 6; FLOPs alike; plus the final round 7
    assert _evaluated(outcome) == [1, 3, 6, 7]


def test_retrain_prime_is_an_independent_retrain_with_its_own_row(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [
        "run",
        *set_args(
            "data.num_clients=3",
            "model.name=mlp",
            "model.options.hidden=[32]",
            "train.rounds=2",
            "train.batch_size=64",
            "unlearn.recovery_rounds=2",
            "eval.mia_repeats=2",
            "eval.mia_null_permutations=0",
            f"cache_dir={tmp_path / 'cache'}",
            "seeds=[0, 1]",
            'unlearn.methods=["retrain", "ft", "not"]',
        ),
        "-q",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    records = [Record.from_dict(r) for r in results["records"]]
    floor = {r.seed: r for r in records if r.method == RETRAIN_FLOOR}
    retrain = {r.seed: r for r in records if r.method == "retrain"}
    assert sorted(floor) == [0, 1]
    for seed, prime in floor.items():  # another model: other initial weights and streams
        assert prime.avg_gap is not None and prime.avg_gap > 0
        assert prime.comm_bytes == retrain[seed].comm_bytes  # the same recipe
    rows = {row["method"]: row for row in results["summary"]}
    entry = rows["ft"]["paired"][RETRAIN_FLOOR]["end"]
    assert entry["family"] == "primary" and entry["n"] == 2
    assert set(rows[RETRAIN_FLOOR]["paired"]) == set()  # not ranked against NoT or FT
    assert rows[RETRAIN_FLOOR]["gap_at"]["comm50"] is None  # no trajectory reading
    log = results["logs"][f"{RETRAIN_FLOOR}/seed0"]  # and none recorded: nothing reads it
    assert log["start"] == {} and all(not r["extra"] for r in log["rounds"])
    assert any(r["extra"] for r in results["logs"]["retrain/seed0"]["rounds"])
    logs = logs_from_json(results["logs"])  # what a resumed run reads back, typed
    assert logs_to_json(logs) == results["logs"] and CellKey("not", 1) in logs
    assert logs[CellKey("retrain", 0)].rounds[-1].metrics.keys() >= set(GAP_METRICS)
    report = (out / "results.md").read_text()
    assert "Retrain′ (another training seed)" in report and "Minus Retrain′" in report
    cached = out.parent / "again"
    assert main([*argv[:-1], str(cached)]) == 0  # Retrain′ comes from the model cache
    again = json.loads((cached / "results.json").read_text())
    prime = [r for r in again["records"] if r["method"] == RETRAIN_FLOOR]
    assert [r["test_acc"] for r in prime] == [floor[s].value("test_acc") for s in (0, 1)]
    assert all(r["cached"] for r in prime)
