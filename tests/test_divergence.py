"""Divergence is detected, named and contained: no NaN model is saved, cached or evaluated."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fednot.benchmark.comparison import summarize
from fednot.benchmark.experiment import Experiment
from fednot.benchmark.plots import delta_chart
from fednot.benchmark.results import Record, with_gaps
from fednot.benchmark.statements import statements
from fednot.benchmark.summary import DivergedSeed, summary_json
from fednot.benchmark.tables import main_table
from fednot.checkpoint import load_checkpoint, save_checkpoint
from fednot.cli.app import main
from fednot.config import TrainConfig, UnlearnConfig
from fednot.errors import DivergenceError
from fednot.federation.backend import InProcess, TrainJob
from fednot.federation.fedavg import FedAvg, StopRule
from fednot.federation.local import LocalRecipe, LocalUpdate, predict
from fednot.metrics.mia import loss_mia
from fednot.testing import sample_record, set_args, tiny_config, tiny_federation
from fednot.types import ForgetRequest, StateDict

FAST = [
    *set_args(
        "data.num_clients=3",
        "model.name=mlp",
        "model.options.hidden=[32]",
        "train.rounds=2",
        "train.batch_size=64",
        "unlearn.recovery_rounds=2",
        "eval.mia_repeats=2",  # the MIA's resolution is not what these tests check
        "eval.mia_null_permutations=0",
    ),
    "-q",
]
REQUEST = ForgetRequest(clients=(0,))


def _reject(constant: str) -> None:
    raise ValueError(f"results.json holds {constant}, which is not JSON")


def _final_entries(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*.pt") if not p.name.endswith(".partial.pt")]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.pt"
    assert main(["train", *FAST, "--set", "cache_dir=", "--out", str(path)]) == 0
    return path


# -- detection, in FedAvg and in the engine -------------------------------------------------------


def test_pretraining_divergence_exits_2_and_leaves_no_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, cache = tmp_path / "model.pt", tmp_path / "cache"
    argv = ["train", *FAST, "--set", f"cache_dir={cache}", "--set", "train.lr=1000"]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Pre-training diverged in round 1" in err and "Traceback" not in err
    assert "learning rate 1000" in err and "train.lr" in err
    assert not out.exists()
    assert _final_entries(cache) == []


class _Poisoned(InProcess):
    """An in-process back-end whose 5th job (3 clients a round: round 2, client 1) sends NaN."""

    calls = 0

    def train(self, jobs: Sequence[TrainJob]) -> list[LocalUpdate]:
        updates = super().train(jobs)
        for i, update in enumerate(updates):
            self.calls += 1
            if self.calls == 5:
                state = {
                    k: torch.full_like(v, math.nan) if v.is_floating_point() else v
                    for k, v in update.state.items()
                }
                updates[i] = replace(update, state=state)
        return updates


def test_a_diverging_round_is_never_checkpointed() -> None:
    """Round 2's client 1 sends NaN weights: round 1 is checkpointed, round 2 raises first."""
    exp = Experiment(tiny_config(), seed=0, federation=tiny_federation())
    saved: list[StateDict] = []
    backend = _Poisoned(exp.model, exp.federation, exp.streams, flops=exp.flops)
    fedavg = FedAvg(
        exp.model,
        exp.federation,
        LocalRecipe.from_config(exp.config.train),
        exp.streams,
        phase="pretrain",
        backend=backend,
    )
    with pytest.raises(DivergenceError, match=r"round 2 \(client 1\).*non-finite weights"):
        fedavg.run(dict(exp.initial_state), StopRule(3), checkpoint=lambda s, _: saved.append(s))
    assert len(saved) == 1
    assert all(torch.isfinite(v).all() for v in saved[0].values() if v.is_floating_point())


def test_recovery_divergence_names_the_method_and_recovery_lr() -> None:
    config = tiny_config(
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=2, recovery_lr=1000.0)
    )
    exp = Experiment(config, seed=0, federation=tiny_federation())
    trained = exp.pretrain()
    with pytest.raises(DivergenceError) as caught:
        exp.unlearn(trained, REQUEST, "ft")
    message = str(caught.value)
    assert re.match(r"Recovery of method 'ft' diverged in round \d+ \(client \d+\)", message)
    assert "learning rate 1000" in message and "unlearn.recovery_lr" in message


def test_a_methods_step_divergence_names_the_method_and_its_options() -> None:
    options = {
        "mode": {"rounds": 1, "degradation_rounds": 1, "lr_degradation": 1e8},
        "perturb": {"kind": "noise", "noise_scale": 1e40},
    }
    unlearn = UnlearnConfig(forget_clients=(0,), methods=("retrain", "mode", "perturb"))
    config = tiny_config(options=options, unlearn=unlearn)
    exp = Experiment(config, seed=0, federation=tiny_federation())
    trained = exp.pretrain()
    with pytest.raises(DivergenceError) as in_rounds:  # MoDE's own FedAvg rounds
        exp.unlearn(trained, REQUEST, "mode")
    assert re.match(r"The step of method 'mode' diverged in round \d+", str(in_rounds.value))
    assert "learning rate 1e+08" in str(in_rounds.value)
    assert "--set options.mode.<option>=<value>" in str(in_rounds.value)
    with pytest.raises(DivergenceError) as in_state:  # the state a step returns
        exp.unlearn(trained, REQUEST, "perturb")
    assert "step of method 'perturb' diverged: it returned non-finite weights" in str(
        in_state.value
    )
    assert "options.perturb" in str(in_state.value)


def test_retrain_divergence_is_named() -> None:
    exp = Experiment(tiny_config(), seed=0, federation=tiny_federation())
    trained = exp.pretrain()
    exp.config = replace(exp.config, train=TrainConfig(rounds=2, batch_size=8, lr=1000.0))
    with pytest.raises(DivergenceError, match=r"^Retrain diverged in round \d+.*train\.lr"):
        exp.unlearn(trained, REQUEST, "retrain")


# -- the CLI: nothing written, nothing evaluated --------------------------------------------------


def test_unlearn_divergence_exits_2_and_writes_nothing(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "unlearned.pt"
    assert (
        main(
            [
                "unlearn",
                "--checkpoint",
                str(checkpoint),
                "--method",
                "ft",
                "--forget-clients",
                "1",
                "--set",
                "unlearn.recovery_lr=1000",
                "-q",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "Recovery of method 'ft' diverged" in err and "unlearn.recovery_lr" in err
    assert not out.exists()


def test_eval_refuses_a_checkpoint_with_nan_weights(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload, config = load_checkpoint(checkpoint)
    state = dict(payload["state"])
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].clone()
    state[name].view(-1)[0] = math.nan
    broken = tmp_path / "nan.pt"
    save_checkpoint(broken, state, config, int(payload["seed"]), "pretrain")
    assert main(["eval", "--checkpoint", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "Cannot evaluate a model with non-finite weights" in err and name in err
    assert "Traceback" not in err


# -- a run: recorded, summarized, resumed ---------------------------------------------------------


def test_a_run_records_a_diverged_method_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    argv = [
        "run",
        *FAST,
        *set_args(
            f"cache_dir={tmp_path / 'cache'}",
            "seeds=[0]",
            'unlearn.methods=["retrain", "ft", "perturb"]',
            'options.perturb={kind="noise", noise_scale=1e40}',
        ),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text(), parse_constant=_reject)
    records = {r["method"]: r for r in results["records"]}
    diverged = records["perturb"]
    assert "step of method 'perturb' diverged" in diverged["diverged"]
    assert diverged["retain_acc"] is None and diverged["avg_gap"] is None
    for method in ("original", "retrain", "ft"):
        assert records[method]["diverged"] == "" and records[method]["retain_acc"] > 0
    assert records["ft"]["avg_gap"] is not None
    row = next(r for r in results["summary"] if r["method"] == "perturb")
    assert row["seeds"] == [] and row["diverged"][0]["seed"] == 0
    report = (out / "results.md").read_text()
    assert "| Perturb | diverged on every seed §" in report
    assert "Perturb diverged on every seed" in report and "noise_scale" in report
    assert (out / "results.png").exists()

    def no_experiment(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished run must not start an experiment again")

    monkeypatch.setattr("fednot.benchmark.cells.Experiment", no_experiment)
    capsys.readouterr()
    assert main(argv) == 0  # every cell, the diverged one included, is done
    again = json.loads((out / "results.json").read_text(), parse_constant=_reject)
    assert again["records"] == results["records"]


def _record(method: str, seed: int, gap: float, **extra: Any) -> Record:
    metrics = {"retain_acc": 90.0 + gap, "forget_acc": 90.0, "test_acc": 90.0, "mia": 50.0}
    fields = dict(mia_std=0.0, val_acc=90.0, comm_bytes=100, flops=10)
    return sample_record(method, seed, **{**metrics, **fields, **extra})


def _diverged(method: str, seed: int) -> Record:
    return Record.of_divergence(
        method, method.upper(), seed, scenario="client", requirements="none", reason=f"boom {seed}"
    )


def test_the_summary_leaves_diverged_seeds_out(tmp_path: Path) -> None:
    records: list[Record] = []
    for seed in range(3):
        records += [_record("retrain", seed, 0.0), _record("not", seed, 1.0 + seed)]
        records.append(_diverged("ft", seed) if seed == 1 else _record("ft", seed, 4.0 * seed))
        records.append(_diverged("pgd", seed))
    records = with_gaps([Record.from_dict(r.to_dict()) for r in records])  # as resumed
    summary = summarize(records, {})
    ft, pgd = (next(r for r in summary if r.method == m) for m in ("ft", "pgd"))
    assert ft.seeds == (0, 2) and ft.diverged == (DivergedSeed(1, "boom 1"),)
    assert ft.avg_gap is not None and ft.avg_gap.n == 2
    assert ft.avg_gap.mean == pytest.approx((0 + 2.0) / 2)
    retain = ft.interval("retain_acc")
    assert retain is not None and retain.mean == pytest.approx(90.0 + 4.0)
    paired = ft.paired["not"]["end"]
    assert paired is not None and paired.n == 2  # only the seeds where both have values
    assert pgd.seeds == () and pgd.avg_gap is None and pgd.paired == {} and pgd.costs is None
    rows = summary_json(summary)  # results.json's layout: every key, a diverged row's included
    assert rows[[r.method for r in summary].index("pgd")]["diverged"][0] == {
        "seed": 0,
        "reason": "boom 0",
    }
    assert all(set(row) == set(rows[0]) for row in rows)
    json.dumps(rows, allow_nan=True)  # serializable as is

    table = main_table(summary)
    assert "| FT (1 of 3 seeds diverged §) |" in table
    assert "| PGD | diverged on every seed § |" in table
    assert "§ FT diverged on 1 of 3 seeds" in table and "Seed 1: boom 1" in table
    assert "Seeds 0, 1, 2" not in table  # distinct reasons are listed apart
    text = statements(summary, 2)
    assert "FT diverged on 1 of 3 seeds: it is compared on the other 2 seeds only" in text
    assert "PGD diverged on every seed: it is not ranked" in text
    assert "PGD's" not in text and "for PGD" not in text
    delta_chart(summary, tmp_path / "deltas.png", subtitle="", floor=None)
    assert (tmp_path / "deltas.png").exists()


# -- the membership-inference attack ------------------------------------------------------------


def test_the_attack_clamps_infinite_losses_to_the_largest_finite_one() -> None:
    rng = np.random.default_rng(0)
    members, nonmembers = rng.exponential(1.0, 60), rng.exponential(0.5, 60)
    members[:5] = np.inf  # overflowing logits, finite weights
    result = loss_mia(members, nonmembers, seed=3, repeats=5)
    assert math.isfinite(result.mean) and math.isfinite(result.std)
    largest = max(members[np.isfinite(members)].max(), nonmembers.max())
    clamped = np.where(np.isinf(members), largest, members)
    assert result == loss_mia(clamped, nonmembers, seed=3, repeats=5)
    everything = loss_mia(np.full(20, np.inf), np.full(20, np.inf), seed=0, repeats=2)
    assert everything.mean == pytest.approx(50.0, abs=15.0)


def test_infinite_losses_of_finite_weights_are_evaluated() -> None:
    exp = Experiment(tiny_config(), seed=0, federation=tiny_federation())
    state = {k: v.clone() for k, v in exp.initial_state.items()}
    state["fc2.weight"].zero_()  # every logit is its bias: classes 1 and 3 get loss +inf
    state["fc2.bias"] = torch.tensor([3e38, -3e38, 3e38, -3e38])
    exp.model.load_state_dict(state)
    losses, _ = predict(exp.model, exp.federation.test, exp.federation.preprocess)
    assert torch.isinf(losses).any() and not torch.isnan(losses).any()
    metrics = exp.evaluate(state, REQUEST)
    assert math.isfinite(metrics.mia) and math.isfinite(metrics.mia_std)


def test_overflowing_logits_with_undefined_losses_are_a_divergence() -> None:
    exp = Experiment(tiny_config(), seed=0, federation=tiny_federation())
    state = {k: v.clone() for k, v in exp.initial_state.items()}
    state["fc1.weight"] *= 1e3  # finite weights; the logits overflow to ±inf, losses are NaN
    state["fc2.weight"] *= 1e37
    assert all(torch.isfinite(v).all() for v in state.values())
    with pytest.raises(DivergenceError, match="logits overflow although its weights are finite"):
        exp.evaluate(state, REQUEST)
