"""A method's own step alone, compared with the model it started from (`step_effect.py`'s measure).

`step_effect` runs `Unlearner.unlearn` with the context `Experiment.unlearn` builds, and no
recovery round, and `compare` measures the result against the pre-trained model; `fcu_grid` and
`negsub_steps` run it over FCU's and NegSub's settings; `smallest` reads FCU's grid.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from fednot.benchmark.experiment import Experiment
from fednot.benchmark.runner import create_methods, history_union
from fednot.configio import load_config
from fednot.data.forget import ForgetSplit
from fednot.federation.aggregate import clone_state
from fednot.federation.fedavg import TrainLog
from fednot.federation.history import HistorySpec
from fednot.federation.local import forward
from fednot.federation.outcome import Trained
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Unlearner
from fednot.unlearning.fcu import FCU
from fednot.unlearning.neg_sub import NegSub
from fednot.unlearning.provide import history_for

# FCU's (iterations, lr): the published settings, then the tuned preset's (mnist5k-cnn-tuned).
FCU_PUBLISHED_AND_TUNED = ((100, 1e-5), (460, 2.534998413252488e-05))


def predictions(exp: Experiment, state: StateDict, split: ForgetSplit) -> dict[str, torch.Tensor]:
    """The predicted classes and labels of ``state`` on D_f, D_r and the test set."""
    exp.model.load_state_dict(state)
    out = {}
    sets = {"forget": split.forget, "retain": split.retain, "test": exp.federation.test}
    for name, samples in sets.items():
        logits, labels = forward(
            exp.model,
            samples,
            exp.federation.preprocess,
            batch_size=exp.config.eval.batch_size,
            device=exp.device,
        )
        out[name] = logits.argmax(dim=1)
        out[f"{name}_labels"] = labels
    return out


def relative_l2(after: StateDict, before: StateDict) -> float:
    """‖after − before‖ / ‖before‖ over the floating-point tensors (float64)."""
    diff = norm = 0.0
    for key, value in before.items():
        if value.is_floating_point():
            base = value.double()
            diff += float((after[key].double() - base).pow(2).sum())
            norm += float(base.pow(2).sum())
    return math.sqrt(diff / norm) if norm else 0.0


def finite(state: StateDict) -> bool:
    """Whether every floating-point tensor of ``state`` is finite."""
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def compare(
    exp: Experiment,
    before: StateDict,
    after: StateDict,
    split: ForgetSplit,
    reference: dict[str, torch.Tensor] | None = None,
) -> dict[str, float | bool]:
    """How ``after`` differs from ``before`` on ``split``; see `step_effect.py`'s docstring.

    ``reference``: ``before``'s `predictions`, when already computed.
    """
    if not finite(after):
        return {"diverged": True}
    old = reference if reference is not None else predictions(exp, before, split)
    new = predictions(exp, after, split)

    def pct(mask: torch.Tensor) -> float:
        return 100.0 * float(mask.double().mean()) if len(mask) else 0.0

    return {
        "diverged": False,
        "changed": pct(new["forget"] != old["forget"]),
        "forget_before": pct(old["forget"] == old["forget_labels"]),
        "forget_after": pct(new["forget"] == new["forget_labels"]),
        "retain_after": pct(new["retain"] == new["retain_labels"]),
        "test_after": pct(new["test"] == new["test_labels"]),
        "changed_test": pct(new["test"] != old["test"]),
        "rel_l2": relative_l2(after, before),
    }


def step_effect(
    exp: Experiment,
    original: Trained | StateDict,
    request: ForgetRequest,
    method: Unlearner,
    reference: dict[str, torch.Tensor] | None = None,
) -> dict[str, float | bool]:
    """Run ``method``'s own step on ``original`` for ``request`` (no recovery) and `compare`.

    The step gets the context `Experiment.unlearn` would build (the same streams and data), and
    its cost is added as ``seconds``.
    """
    trained = original if isinstance(original, Trained) else Trained(original, TrainLog())
    split = exp.split(request)
    ctx = exp.context(method, split, history=history_for(method, trained))
    start = time.perf_counter()
    result = method.unlearn(clone_state(trained.state), ctx)
    seconds = time.perf_counter() - start
    return {**compare(exp, trained.state, result.state, split, reference), "seconds": seconds}


def smallest(
    rows: list[dict[str, Any]], threshold: float, seeds: Sequence[int]
) -> dict[str, dict[str, float | None]]:
    """Per (iterations, low_freq_from): the smallest lr changing ≥ ``threshold`` % on every seed."""
    found: dict[str, dict[str, float | None]] = {}
    keys = sorted({(r["iterations"], r["low_freq_from"]) for r in rows})
    for iterations, reading in keys:
        best = None
        for lr in sorted({r["lr"] for r in rows}):
            cell = [
                r
                for r in rows
                if r["iterations"] == iterations and r["low_freq_from"] == reading and r["lr"] == lr
            ]
            ok = len(cell) == len(seeds) and all(
                not r["diverged"] and r["changed"] >= threshold for r in cell
            )
            if ok:
                best = lr
                break
        found.setdefault(str(iterations), {})[reading] = best
    return found


def load(preset: str, cache: str, overrides: Sequence[str] = ()) -> Any:
    """The preset's configuration with the model cache, one thread, no trajectories."""
    config = load_config(preset=preset, overrides=[f"cache_dir={cache}", *overrides])
    return replace(config, threads=1, eval=replace(config.eval, curve_every=0))


def history_spec(exp: Experiment, with_history: bool) -> HistorySpec | None:
    """What the preset's bench records in pre-training (its methods' union), or nothing."""
    return history_union(create_methods(exp.config).values()) if with_history else None


def pretrained(exp: Experiment, with_history: bool) -> Trained:
    """The preset's pre-trained model, recorded as its bench records it (cached)."""
    return exp.pretrain(history=history_spec(exp, with_history))


def is_cached(exp: Experiment, with_history: bool) -> bool:
    """Whether `pretrained` would load from the model cache."""
    spec = history_spec(exp, with_history)
    key = exp.cache_key("pretrain", history=spec and spec.to_dict())
    return Path(exp.config.cache_dir, f"{key}.pt").exists()


def fcu_grid(
    exp: Experiment,
    trained: Trained,
    request: ForgetRequest,
    lrs: Sequence[float],
    iterations: Sequence[int],
    reference: dict[str, torch.Tensor],
    log: Callable[[str], None],
    long_max_lr: float = math.inf,
) -> list[dict[str, Any]]:
    """FCU's step alone at every (iterations, lr, low_freq_from) of the grid, published first."""
    rows = []
    settings = [(its, lr, "unlearned") for its, lr in FCU_PUBLISHED_AND_TUNED]
    for its in iterations:
        if its == min(iterations):  # the shortest: every lr, both readings
            settings += [(its, lr, r) for lr in lrs for r in ("unlearned", "original")]
        else:  # longer: the published reading, the rates below the shortest's destructive ones
            settings += [(its, lr, "unlearned") for lr in lrs if lr <= long_max_lr]
    for its, lr, reading in dict.fromkeys(settings):
        method = FCU(iterations=its, lr=lr, low_freq_from=reading)  # type: ignore[arg-type]
        row = step_effect(exp, trained, request, method, reference)
        rows.append({"iterations": its, "lr": lr, "low_freq_from": reading, **row})
        log(f"  fcu it={its:<4} lr={lr:<9.3g} {reading:<9} " + brief(row))
    return rows


def negsub_steps(
    exp: Experiment,
    trained: Trained,
    request: ForgetRequest,
    scalings: Sequence[str],
    reference: dict[str, torch.Tensor],
    log: Callable[[str], None],
    prefix: str = "  ",
) -> list[dict[str, Any]]:
    """NegSub's step alone with each of ``scalings``; ``prefix`` starts each logged line."""
    rows = []
    for scaling in scalings:
        row = step_effect(exp, trained, request, NegSub(scaling=scaling), reference)  # type: ignore[arg-type]
        rows.append({"scaling": scaling, **row})
        log(f"{prefix}negsub {scaling:<11} " + brief(row))
    return rows


def brief(row: dict[str, Any]) -> str:
    """One line of a step's effect."""
    if row.get("diverged"):
        return "diverged"
    return (
        f"changed {row['changed']:6.2f} %  forget {row['forget_before']:6.2f} -> "
        f"{row['forget_after']:6.2f}  retain {row['retain_after']:6.2f}  test "
        f"{row['test_after']:6.2f}  relL2 {row['rel_l2']:.2e}  {row['seconds']:.1f} s"
    )
