"""NegSub + R rounds against FT + R and FT + R + 1, and the `Kick` control (`step_effect.py`).

`recovered` runs the models through `Experiment.unlearn` and evaluates them; `comparison`
prints their table and their `gaps` to the FT runs; `add_control` puts a separate control run's
models next to the FT runs of the same recovery learning rate and seed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from fednot.benchmark.experiment import Experiment
from fednot.federation.outcome import Trained
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.fine_tune import FT
from fednot.unlearning.neg_sub import NegSub

GAP_METRICS = ("retain_acc", "forget_acc", "test_acc", "mia")


class Kick(NegSub):
    """A control for NegSub: the original plus noise, each tensor moved as far as NegSub moves it.

    Per floating-point tensor, Gaussian noise (the method's seeded stream ``"kick"``) scaled to
    the norm of that tensor's change under NegSub (``renormalize``): a perturbation of NegSub's
    size with no information about the forgotten client.
    """

    name = "kick"
    title = "Kick"

    def __init__(self) -> None:
        super().__init__(scaling="renormalize")

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """θ_T + noise with NegSub's per-tensor change norms."""
        negsub = super().unlearn(state, ctx).state
        generator = ctx.generator("kick")
        out = dict(state)
        for key, value in state.items():
            if not value.is_floating_point():
                continue
            size = float((negsub[key].double() - value.double()).norm())
            noise = torch.randn(value.shape, generator=generator, dtype=torch.float64)
            scale = size / float(noise.norm()) if float(noise.norm()) > 0 else 0.0
            out[key] = (value.double() + scale * noise).to(value.dtype)
        return UnlearnResult(out)


def recovered(
    exp: Experiment,
    trained: Trained,
    request: ForgetRequest,
    recovery_lr: float,
    rounds: int,
    log: Callable[[str], None],
    runs: frozenset[str] = frozenset({"negsub", "ft"}),
) -> dict[str, Any]:
    """NegSub (both search-space scalings) + R rounds, FT + R and FT + R + 1, evaluated.

    ``runs``: which of ``"negsub"``, ``"ft"`` and ``"control"`` (`Kick` + R rounds: the original
    moved as far as NegSub (``renormalize``) moves it, per tensor, in a random direction).
    """
    unlearn = replace(
        exp.config.unlearn,
        recovery_lr=recovery_lr,
        method_recovery_lr={},
        recovery_rounds=rounds,
    )
    twin = copy.copy(exp)
    twin.config = replace(exp.config, unlearn=unlearn)
    out: dict[str, Any] = {}

    def metrics(state: StateDict) -> dict[str, float]:
        values = twin.evaluate(state, request, noise_floor=False)
        return {k: float(values[k]) for k in GAP_METRICS}

    for scaling in ("update", "renormalize") if "negsub" in runs else ():
        start = time.perf_counter()
        outcome = twin.unlearn(trained, request, NegSub(scaling=scaling))
        out[f"negsub_{scaling}"] = metrics(outcome.state)
        log(
            f"    negsub {scaling:<11} + {rounds}: {out[f'negsub_{scaling}']} "
            f"({time.perf_counter() - start:.0f} s)"
        )
    if "control" in runs:
        start = time.perf_counter()
        outcome = twin.unlearn(trained, request, Kick())
        out["kick"] = metrics(outcome.state)
        log(f"    kick + {rounds}: {out['kick']} ({time.perf_counter() - start:.0f} s)")
    for extra in (0, 1) if "ft" in runs else ():  # FT + R and FT + R + 1: two runs
        longer = copy.copy(twin)
        longer.config = replace(
            twin.config, unlearn=replace(unlearn, recovery_rounds=rounds + extra)
        )
        start = time.perf_counter()
        outcome = longer.unlearn(trained, request, FT())
        out[f"ft_{rounds + extra}"] = metrics(outcome.state)
        log(
            f"    ft + {rounds + extra}: {out[f'ft_{rounds + extra}']} "
            f"({time.perf_counter() - start:.0f} s)"
        )
    return out


def gaps(values: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """|Δ| of the four metrics between two models, and their mean (``avg``)."""
    out = {k: abs(values[k] - reference[k]) for k in GAP_METRICS}
    return {**out, "avg": sum(out.values()) / len(out)}


def comparison(
    recovery: dict[str, dict[str, Any]], rounds: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per recovery lr, seed and model: its metrics and `gaps` to FT + R and FT + R + 1, printed.

    ``recovery``: `recovered`'s models per recovery lr (``f"{lr:g}"``) and seed (``str(seed)``).
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for lr, per_seed in recovery.items():
        print(f"\nNegSub + {rounds} against FT + {rounds} and FT + {rounds + 1}, recovery lr {lr}")
        print("| seed | model | retain | forget | test | MIA | avg |Δ| to FT+R | to FT+R+1 |")
        print("|---|---|---|---|---|---|---|---|")
        for seed, models in per_seed.items():
            for name, values in models.items():
                to_r = gaps(values, models[f"ft_{rounds}"])["avg"]
                to_r1 = gaps(values, models[f"ft_{rounds + 1}"])["avg"]
                print(
                    f"| {seed} | {name} | {values['retain_acc']:.2f} | "
                    f"{values['forget_acc']:.2f} | {values['test_acc']:.2f} | "
                    f"{values['mia']:.2f} | {to_r:.3f} | "
                    f"{to_r1:.3f} |"
                )
        out[lr] = {
            seed: {
                name: {
                    "metrics": values,
                    f"gap_to_ft_{rounds}": gaps(values, models[f"ft_{rounds}"]),
                    f"gap_to_ft_{rounds + 1}": gaps(values, models[f"ft_{rounds + 1}"]),
                }
                for name, values in models.items()
            }
            for seed, models in per_seed.items()
        }
    return out


def add_control(by_recovery_lr: dict[str, Any], control: dict[str, Any]) -> None:
    """Add a ``control`` part's models, with their gaps to the FT runs of the same lr and seed."""
    rounds = control["rounds"]
    for lr, per_seed in control["by_recovery_lr"].items():
        for seed, models in per_seed.items():
            cell = by_recovery_lr[lr][seed]
            ft = {r: cell[f"ft_{r}"]["metrics"] for r in (rounds, rounds + 1)}
            for name, values in models.items():
                cell[name] = {"metrics": values}
                for r, reference in ft.items():
                    cell[name][f"gap_to_ft_{r}"] = gaps(values, reference)
