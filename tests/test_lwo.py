"""`fednot analyze lwo`: the verdict by hand, the start states, and the run on a tiny study."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from fednot.analysis.common import Study
from fednot.analysis.lwo import LwoRun, analyze_lwo, lwo_check, lwo_starts, lwo_verdict
from fednot.errors import ConfigError, FedNotError
from fednot.federation.fedavg import FedAvg
from fednot.testing import tiny_config, tiny_federation
from fednot.types import StateDict
from fednot.unlearning.negation import NoT

ROUNDS = 3


# -- the verdict --------------------------------------------------------------------------------


def test_verdict_passes_within_both_tolerances() -> None:
    ok, why = lwo_verdict(90.0, 90.5, 90.8)  # |a-b| = 0.5, a - c = -0.8
    assert ok and why.startswith("passes")
    assert "|a − b| = 0.50 pp ≤ 1 pp" in why and "a − c = −0.80 pp ≥ −1 pp" in why


def test_verdict_boundaries_are_inclusive() -> None:
    assert lwo_verdict(90.0, 91.0, 91.0)[0]  # |a-b| = 1 exactly, a = c - 1 exactly


@pytest.mark.parametrize(
    ("a", "b", "c", "fails"),
    [(90.0, 91.5, 90.0, "|a − b| = 1.50 pp >"), (90.0, 90.0, 91.5, "a − c = −1.50 pp <")],
)
def test_verdict_fails_on_either_condition(a: float, b: float, c: float, fails: str) -> None:
    ok, why = lwo_verdict(a, b, c)
    assert not ok and why.startswith("fails") and fails in why


def test_verdict_tolerances_are_keywords() -> None:
    assert lwo_verdict(90.0, 91.5, 90.0, tol_ab=2.0)[0]
    assert not lwo_verdict(90.0, 90.0, 90.5, tol_ac=0.25)[0]
    assert lwo_verdict(95.0, 95.0, 80.0, tol_ac=0.0)[0]  # (a) far above scratch passes
    assert not lwo_verdict(math.nan, 90.0, 90.0)[0]
    with pytest.raises(ConfigError, match="Tolerances"):
        lwo_verdict(1.0, 1.0, 1.0, tol_ab=-1.0)


# -- the start states ---------------------------------------------------------------------------


def test_starts_by_hand() -> None:
    trained = {"w": torch.tensor([1.0, -2.0]), "b": torch.tensor([3.0]), "h": torch.tensor([4.0])}
    fresh = {"w": torch.tensor([0.1, 0.2]), "b": torch.tensor([0.3]), "h": torch.tensor([0.4])}
    starts = lwo_starts(trained, fresh, negated=("w",), frozen=("w", "b"))
    expected = {
        "a": {"w": [-1.0, 2.0], "b": [3.0], "h": [0.4]},
        "b": {"w": [1.0, -2.0], "b": [3.0], "h": [0.4]},
        "c": {"w": [0.1, 0.2], "b": [0.3], "h": [0.4]},
    }
    for name, state in expected.items():
        for key, values in state.items():
            assert starts[name][key].tolist() == pytest.approx(values), (name, key)
    starts["c"]["h"].add_(1.0)  # new tensors: the inputs are untouched
    assert fresh["h"].item() == pytest.approx(0.4)
    with pytest.raises(ConfigError):
        lwo_starts(trained, fresh, negated=("h",), frozen=("w",))


# -- on a tiny study ----------------------------------------------------------------------------


def _study(tmp_path: Path, seeds: tuple[int, ...] = (0,)) -> Study:
    config = tiny_config(seeds=seeds)
    return Study(config, tmp_path, federation=tiny_federation(), options={"rounds": str(ROUNDS)})


@pytest.fixture(scope="module")
def check(tmp_path_factory: pytest.TempPathFactory) -> tuple[LwoRun, StateDict]:
    study = _study(tmp_path_factory.mktemp("lwo"))
    exp = study.experiment(0)
    trained = exp.pretrain().state
    return lwo_check(exp, trained, rounds=ROUNDS, negation=NoT(negate_bias=True)), trained


def test_frozen_layer_is_the_first_layer_with_its_bias(check: tuple[LwoRun, StateDict]) -> None:
    run, _ = check
    assert len(run.layers) == 1 and run.frozen == run.negated
    assert {p.rsplit(".", 1)[-1] for p in run.frozen} == {"weight", "bias"}


def test_frozen_layer_is_bit_identical_after_training(check: tuple[LwoRun, StateDict]) -> None:
    run, trained = check
    for name in ("a", "b"):
        variant = run.variants[name]
        assert variant.recipe.frozen == frozenset(run.frozen)
        for key in run.frozen:
            assert torch.equal(variant.state[key], variant.start[key]), (name, key)
        trained_other = [k for k in variant.state if k not in run.frozen]
        assert any(not torch.equal(variant.state[k], variant.start[k]) for k in trained_other)
    for key in run.frozen:  # (b) keeps +θ*, (a) keeps −θ*
        assert torch.equal(run.variants["b"].state[key], trained[key])
        assert torch.equal(run.variants["a"].state[key], -trained[key])


def test_a_and_b_start_identical_except_the_sign_of_the_layer(
    check: tuple[LwoRun, StateDict],
) -> None:
    run, _ = check
    a, b = run.variants["a"].start, run.variants["b"].start
    assert set(a) == set(b)
    for key in a:
        expected = -b[key] if key in run.negated else b[key]
        assert torch.equal(a[key], expected), key
        if key in run.negated:
            assert not torch.equal(a[key], b[key])


def test_c_is_b_with_nothing_frozen_and_the_same_init(check: tuple[LwoRun, StateDict]) -> None:
    run, trained = check
    b, c = run.variants["b"], run.variants["c"]
    assert c.recipe == replace(b.recipe, frozen=frozenset())
    for key in c.start:
        if key in run.frozen:
            assert not torch.equal(c.start[key], trained[key])
            assert not torch.equal(c.state[key], c.start[key]), "(c) trains the layer"
        else:
            assert torch.equal(c.start[key], b.start[key]), key


def test_curves_have_one_point_per_round_and_costs(check: tuple[LwoRun, StateDict]) -> None:
    run, _ = check
    costs = {(v.comm_bytes, v.flops) for v in run.variants.values()}
    assert len(costs) == 1 and min(next(iter(costs))) > 0
    for variant in run.variants.values():
        assert len(variant.curve) == ROUNDS
        assert all(0.0 <= acc <= 100.0 for acc in [*variant.curve, variant.final_test_acc])
        assert 0.0 <= variant.final_val_acc <= 100.0


def test_a_moved_frozen_layer_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = FedAvg.run

    def leaky(self: FedAvg, state: StateDict, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        out, log = run(self, state, *args, **kwargs)  # type: ignore[arg-type]
        return {k: v + 1e-6 if v.is_floating_point() else v for k, v in out.items()}, log

    monkeypatch.setattr(FedAvg, "run", leaky)
    exp = _study(tmp_path).experiment(0)
    with pytest.raises(FedNotError, match="frozen tensors"):
        lwo_check(exp, exp.initial_state, rounds=1, negation=NoT())


def test_analysis_writes_report_figure_and_numbers(tmp_path: Path) -> None:
    markdown = analyze_lwo(_study(tmp_path, seeds=(0, 1)))
    assert markdown == tmp_path / "lwo.md"
    assert (tmp_path / "lwo.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "lwo.json").read_text())
    assert data["rounds"] == ROUNDS and isinstance(data["passes"], bool)
    assert set(data["seeds"]) == {"0", "1"} and data["curve_samples"] == 64
    seed = data["seeds"]["1"]
    assert all(len(seed[n]["curve"]) == ROUNDS and seed[n]["frozen_unchanged"] for n in "abc")
    assert seed["c"]["frozen"] == [] and set(seed["a"]["frozen"]) == set(data["frozen"])
    text = markdown.read_text()
    assert "![" in text and "(lwo.png)" in text and data["verdict"] in text
    assert "| (a)" in text and "| (c)" in text and "Reading it against the paper" in text
    assert " ± " in text and "seed 1: " in text
