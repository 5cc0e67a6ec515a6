"""The comparison protocol: one recovery rule for every method, class-wise validation without the
forgotten class, no oracle stop rule in any shipped preset, trajectories and cost readings."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from fednot.benchmark.experiment import Experiment
from fednot.benchmark.runlog import CellLog, RoundLog
from fednot.benchmark.scenarios import ClassScenario
from fednot.benchmark.trajectory import Point, Trajectory, read_at_cost, reading_rounds, trajectory
from fednot.config import EvalConfig, UnlearnConfig
from fednot.configio import load_config
from fednot.data.forget import split_request
from fednot.presets import preset_names, scenario_names
from fednot.testing import tiny_config, tiny_federation
from fednot.types import ForgetRequest


def test_under_the_default_ft_and_not_run_the_same_number_of_rounds() -> None:
    config = tiny_config(unlearn=UnlearnConfig(recovery_rounds=3))
    exp = Experiment(config, 0, federation=tiny_federation())
    trained = exp.pretrain()
    outcomes = {m: exp.unlearn(trained, exp.scenario.request, m) for m in ("ft", "not", "not_wb")}
    assert {len(o.log.rounds) for o in outcomes.values()} == {3}
    assert all(o.log.stop_reason == "budget of 3 rounds" for o in outcomes.values())
    assert outcomes["ft"].costs.comm_bytes == outcomes["not"].costs.comm_bytes


def test_the_original_target_stops_on_what_the_server_knows() -> None:
    """``"original"``: the original model's retained-validation accuracy, minus the margin."""
    rule = UnlearnConfig(recovery_rounds=5, target_val_acc="original", target_margin=100 - 1e-9)
    exp = Experiment(tiny_config(unlearn=rule), 0, federation=tiny_federation())
    trained = exp.pretrain()
    outcome = exp.unlearn(trained, exp.scenario.request, "ft")  # no Retrain needed
    assert len(outcome.log.rounds) == 1
    assert outcome.log.stop_reason.startswith("reached target validation accuracy")


@pytest.mark.parametrize("scope", ["federation", "target"])
def test_class_wise_validation_holds_no_forgotten_class_sample(scope: str) -> None:
    federation = tiny_federation(num_clients=3, val_per_client=16)
    clients = (0, 1, 2) if scope == "federation" else (0,)
    split = split_request(federation, ForgetRequest(clients=clients, classes=(1,)))
    for client in split.retained.clients:
        labels = set(client.val.labels.tolist())
        if client.id in clients:
            assert 1 not in labels, f"client {client.id} still validates on the forgotten class"
        else:
            assert 1 in labels  # the target scope: other clients still hold the class
    assert 1 not in set(split.retain.labels.tolist()) or scope == "target"
    before = {c.id: c.val for c in federation.clients}
    for client in split.retained.clients:  # every other validation sample is kept
        kept = before[client.id].labels
        expected = int((kept != 1).sum()) if client.id in clients else len(kept)
        assert len(client.val) == expected


def test_class_wise_run_validates_without_the_class() -> None:
    config = tiny_config(scenario=ClassScenario(classes=(0,), class_scope="federation"))
    exp = Experiment(config, 0, federation=tiny_federation())
    split = exp.split(exp.scenario.request)
    assert 0 not in set(split.retained.pooled_val().labels.tolist())


def test_no_shipped_preset_or_scenario_stops_on_an_oracle() -> None:
    assert UnlearnConfig().target_val_acc is None
    for preset, scenario in itertools.product(preset_names(), [None, *scenario_names()]):
        config = load_config(None, [], preset=preset, scenario=scenario)
        assert config.unlearn.target_val_acc != "retrain", (preset, scenario)
        assert config.unlearn.recovery_rounds >= 1


def test_every_shipped_preset_lists_both_not_variants_when_it_lists_not() -> None:
    for preset in preset_names():
        methods = load_config(None, [], preset=preset).unlearn.methods
        assert "not" in methods and "not_wb" in methods, preset


def test_the_papers_not_negates_weights_only_and_not_wb_also_the_bias() -> None:
    exp = Experiment(tiny_config(), 0, federation=tiny_federation())
    trained = exp.pretrain()
    request = exp.scenario.request
    no_recovery = replace(exp.config, unlearn=replace(exp.config.unlearn, recovery_rounds=0))
    exp = Experiment(no_recovery, 0, federation=tiny_federation())
    weights = exp.unlearn(trained, request, "not").notes["negated_parameters"]
    both = exp.unlearn(trained, request, "not_wb").notes["negated_parameters"]
    assert weights == ["fc1.weight"] and both == ["fc1.weight", "fc1.bias"]


def test_the_last_trajectory_point_equals_the_final_evaluation() -> None:
    config = tiny_config(eval=EvalConfig(curve_every=1, mia_folds=2, mia_repeats=3))
    exp = Experiment(config, 0, federation=tiny_federation())
    trained = exp.pretrain()
    outcome = exp.unlearn(trained, exp.scenario.request, "not")
    final = exp.evaluate(outcome.state)
    last = outcome.log.rounds[-1].extra
    for metric in ("retain_acc", "forget_acc", "test_acc", "mia"):
        assert last[metric] == pytest.approx(getattr(final, metric), abs=1e-9), metric
    assert set(outcome.start) >= {"retain_acc", "forget_acc", "test_acc", "mia"}


def _points(evaluated: tuple[int, ...] = (0, 1, 2, 3)) -> Trajectory:
    metrics = {"retain_acc": 90.0, "forget_acc": 90.0, "test_acc": 90.0, "mia": 50.0}
    costs = tuple(Point(r, 100 + 10 * r, 5 * r, {}) for r in range(4))
    points = tuple(
        Point(r, 100 + 10 * r, 5 * r, {**metrics, "forget_acc": 90.0 - r}) for r in evaluated
    )
    return Trajectory(points, costs)


def test_reading_at_a_cost_takes_the_last_model_within_it() -> None:
    points = _points()  # cumulative bytes 100 (step), 110, 120, 130; FLOPs 0, 5, 10, 15
    assert read_at_cost(points, 99) is None  # the step alone costs more
    reading = read_at_cost(points, 125)
    assert reading is not None and reading.point.round == 2 and not reading.beyond_run
    assert reading.exact
    beyond = read_at_cost(points, 500)
    assert beyond is not None and beyond.point.round == 3 and beyond.beyond_run
    flops = read_at_cost(points, 7, "flops")
    assert flops is not None and flops.point.round == 1 and flops.exact


def test_a_reading_the_grid_skipped_is_flagged_inexact() -> None:
    grid = _points(evaluated=(0, 2, 3))  # round 1 not evaluated
    reading = read_at_cost(grid, 115)  # round 1 is the last within 115 bytes
    assert reading is not None and reading.point.round == 0 and not reading.exact


def test_reading_rounds_are_the_last_round_within_each_exceeded_budget() -> None:
    costs = list(_points().costs)
    assert reading_rounds(costs, {"comm25": 115.0, "flops50": 7.0}) == {1}
    assert reading_rounds(costs[:2], {"comm25": 115.0}) == set()  # not exceeded yet
    assert reading_rounds(costs, {"comm50": 95.0}) == set()  # the step alone costs more


def test_trajectory_counts_the_step_and_every_round_cost() -> None:
    metrics = {"retain_acc": 1.0, "forget_acc": 2.0, "test_acc": 3.0, "mia": 50.0}
    rounds = (
        RoundLog(
            1, (0,), 0.5, 90.0, comm_bytes=10, flops=5, seconds=0.0, metrics={}
        ),  # not evaluated
        RoundLog(2, (0,), 0.5, 90.0, comm_bytes=10, flops=5, seconds=0.0, metrics=metrics),
    )
    log = CellLog(start=metrics, stop_reason="", rounds=rounds)
    run = trajectory(log, step_comm_bytes=7, step_flops=1)
    points = run.points
    assert [(p.round, p.comm_bytes, p.flops) for p in points] == [(0, 7, 1), (2, 27, 11)]
    assert [(c.round, c.comm_bytes, c.flops) for c in run.costs] == [
        (0, 7, 1),
        (1, 17, 6),
        (2, 27, 11),
    ]
    reference = {"retain_acc": 2.0, "forget_acc": 2.0, "test_acc": 2.0, "mia": 52.0}
    assert points[0].gap(reference) == pytest.approx((1 + 0 + 1 + 2) / 4)
