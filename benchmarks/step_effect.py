r"""What FCU's and NegSub's own steps do to the pre-trained model, before any recovery round.

Issue 27: at its published settings FCU's trials matched FT's to 0.01, and tuned NegSub looked
like FT started one round later. This script measures the step alone. On a preset (default
``mnist5k-cnn``, client 0 forgotten) and each seed, from the cached pre-trained model, it runs a
method's own step (`Unlearner.unlearn` with the context `Experiment.unlearn` builds, and no
recovery round) and compares the result with the model it started from:

- ``changed``: the share (%) of the forgotten client's training samples (D_f) whose predicted
  class differs after the step (``changed_test``: the same on the test set);
- ``forget_before`` / ``forget_after``: accuracy (%) on D_f; ``retain_after``, ``test_after``:
  accuracy on the retained clients' training data and on the test set after the step;
- ``rel_l2``: the norm of θ' − θ over the norm of θ, over the state's floating-point tensors.

Parts (``--parts``; the default runs all but ``control``):

- ``fcu``: FCU's step over a grid: at the smallest of ``--fcu-iterations`` every rate of
  ``--fcu-lrs`` with both ``low_freq_from`` readings; at the larger counts the published reading
  (``"unlearned"``) with the rates up to ``--long-max-lr``; plus the published and the tuned
  preset's settings; the other options at their published values. Reports, per iteration count
  and reading, the smallest learning rate whose step changes at least 1 % (and 10 %) of D_f's
  predictions on every seed, or ``None``.
- ``negsub``: NegSub's step for each of its four scalings.
- ``recovery``: NegSub (``update``, ``renormalize``) + R rounds against FT + R and FT + R + 1
  rounds at the same recovery learning rate (``--recovery-lrs``; R is the preset's
  ``unlearn.recovery_rounds``), per seed, on the four gap metrics (retain, forget and test
  accuracy, the loss MIA), each run through `Experiment.unlearn`.
- ``control`` (not in the default): FT + R from the original moved, per tensor, as far as
  NegSub (``renormalize``) moves it but in a random direction (`Kick`): what any perturbation
  of NegSub's size does to the recovered model.
- ``fmnist``: FCU's step (and NegSub's, where a pre-training with the history is cached) on
  ``fmnist-cnn``; skipped, and said so, when the data is not installed.

Run from the repository root; one torch thread (cache keys include the count). Parts can run
as separate processes and be merged (``--merge``; the summaries are recomputed from the rows):

    python benchmarks/step_effect.py --seeds 0,1,2 --cache .fednot-cache \\
        --out docs/results/step-effect.json
    python benchmarks/step_effect.py --parts recovery,control \\
        --recovery-lrs 0.014797314577037876,0.08037885852730609 --out recovery.json
    python benchmarks/step_effect.py --merge step-effect.json recovery.json --out merged.json
"""

from __future__ import annotations

import argparse
import copy
import json
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
from fednot.progress import Silent
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.fcu import FCU
from fednot.unlearning.fine_tune import FT
from fednot.unlearning.neg_sub import NegSub
from fednot.unlearning.provide import history_for

FCU_LRS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 1e-2, 1e-1)
FCU_ITERATIONS = (100, 500)
NEGSUB_SCALINGS = ("update", "renormalize", "p_u", "one")
THRESHOLDS = (1.0, 10.0)
GAP_METRICS = ("retain_acc", "forget_acc", "test_acc", "mia")


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
    """How ``after`` differs from ``before`` on ``split``; see the module docstring.

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
    settings = [
        (100, 1e-5, "unlearned"),
        (460, 2.534998413252488e-05, "unlearned"),
    ]  # published, tuned
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


def brief(row: dict[str, Any]) -> str:
    """One line of a step's effect."""
    if row.get("diverged"):
        return "diverged"
    return (
        f"changed {row['changed']:6.2f} %  forget {row['forget_before']:6.2f} -> "
        f"{row['forget_after']:6.2f}  retain {row['retain_after']:6.2f}  test "
        f"{row['test_after']:6.2f}  relL2 {row['rel_l2']:.2e}  {row['seconds']:.1f} s"
    )


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
        outcome = twin.unlearn(trained, request, NegSub(scaling=scaling))  # type: ignore[arg-type]
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


def summary_rows(rows: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Per setting (``keys``), the mean over seeds of each measurement, and the seeds' min/max."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for setting, cell in groups.items():
        entry: dict[str, Any] = dict(zip(keys, setting, strict=True))
        live = [r for r in cell if not r["diverged"]]
        entry["diverged_seeds"] = len(cell) - len(live)
        measured = ("changed", "changed_test", "forget_after", "retain_after", "test_after")
        for name in (*measured, "rel_l2", "seconds"):
            values = [r[name] for r in live]
            entry[name] = sum(values) / len(values) if values else None
        entry["changed_min"] = min((r["changed"] for r in live), default=None)
        entry["changed_max"] = max((r["changed"] for r in live), default=None)
        out.append(entry)
    return out


def print_table(title: str, entries: list[dict[str, Any]], keys: Sequence[str]) -> None:
    """A Markdown table of `summary_rows`."""
    print(f"\n{title}\n")
    head = [*keys, "D_f changed % (min–max)", "test changed %", "forget after", "retain after"]
    head += ["test after", "rel. L2"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for e in entries:
        cells = [f"{e[k]:g}" if isinstance(e[k], float) else str(e[k]) for k in keys]
        if e["changed"] is None:
            cells += ["diverged"] + [""] * 5
        else:
            cells += [
                f"{e['changed']:.2f} ({e['changed_min']:.2f}–{e['changed_max']:.2f})"
                + (f", {e['diverged_seeds']} diverged" if e["diverged_seeds"] else ""),
                f"{e['changed_test']:.2f}",
                f"{e['forget_after']:.2f}",
                f"{e['retain_after']:.2f}",
                f"{e['test_after']:.2f}",
                f"{e['rel_l2']:.2e}",
            ]
        print("| " + " | ".join(cells) + " |")


def gaps(values: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """|Δ| of the four metrics between two models, and their mean (``avg``)."""
    out = {k: abs(values[k] - reference[k]) for k in GAP_METRICS}
    return {**out, "avg": sum(out.values()) / len(out)}


def main() -> None:
    """Measure, print tables, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist5k-cnn")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--cache", default=".fednot-cache", help="the model cache (cache_dir)")
    parser.add_argument("--out", type=Path, default=Path("step-effect.json"))
    parser.add_argument(
        "--parts",
        default="fcu,negsub,recovery,fmnist",
        help="what to run: fcu, negsub, recovery, control, fmnist (comma-separated)",
    )
    parser.add_argument(
        "--update", action="store_true", help="keep the other parts already in --out"
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        help="instead of measuring: merge these outputs of runs of other --parts into --out, "
        "the summaries recomputed from their rows",
    )
    parser.add_argument("--fcu-lrs", default=",".join(f"{x:g}" for x in FCU_LRS))
    parser.add_argument(
        "--long-max-lr",
        type=float,
        default=1e-3,
        help="above the shortest iteration count, only learning rates up to this one",
    )
    parser.add_argument("--fcu-iterations", default=",".join(map(str, FCU_ITERATIONS)))
    parser.add_argument(
        "--recovery-lrs",
        default="0.014797314577037876",
        help="recovery learning rates of the NegSub/FT comparison (default: tuned NegSub's in "
        "mnist5k-cnn-tuned; tuned FT's is 0.08037885852730609)",
    )
    parser.add_argument("--fmnist-root", default="/usr/share/datasets/fashion-mnist")
    args = parser.parse_args()
    if args.merge:
        merge(args.merge, args.out)
        return
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    parts = set(args.parts.split(","))
    lrs = [float(x) for x in args.fcu_lrs.split(",")]
    iterations = [int(x) for x in args.fcu_iterations.split(",")]
    result: dict[str, Any] = {}
    if args.update and args.out.exists():
        result = json.loads(args.out.read_text())
    began = time.perf_counter()

    def log(line: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f} s] {line}", flush=True)

    config = load(args.preset, args.cache)
    rounds = config.unlearn.recovery_rounds
    fcu_rows: list[dict[str, Any]] = []
    negsub_rows: list[dict[str, Any]] = []
    recovery: dict[str, dict[str, Any]] = {}
    if parts & {"fcu", "negsub", "recovery", "control"}:
        for seed in seeds:
            exp = Experiment(config, seed, progress=Silent())
            log(f"seed {seed}: pre-trained model cached: {is_cached(exp, True)}")
            trained = pretrained(exp, True)
            request = exp.scenario.request
            reference = predictions(exp, trained.state, exp.split(request))
            if "fcu" in parts:
                rows = fcu_grid(
                    exp, trained, request, lrs, iterations, reference, log, args.long_max_lr
                )
                fcu_rows += [{"seed": seed, **r} for r in rows]
            if "negsub" in parts:
                for scaling in NEGSUB_SCALINGS:
                    row = step_effect(exp, trained, request, NegSub(scaling=scaling), reference)  # type: ignore[arg-type]
                    negsub_rows.append({"seed": seed, "scaling": scaling, **row})
                    log(f"  negsub {scaling:<11} " + brief(row))
            runs = {"negsub", "ft"} if "recovery" in parts else set()
            runs |= {"control"} if "control" in parts else set()
            for lr in (float(x) for x in args.recovery_lrs.split(",")) if runs else ():
                log(f"  recovery at lr {lr:g}")
                recovery.setdefault(f"{lr:g}", {})[str(seed)] = recovered(
                    exp, trained, request, lr, rounds, log, frozenset(runs)
                )
    if "fcu" in parts:
        result["fcu"] = {
            "rows": fcu_rows,
            "summary": summary_rows(fcu_rows, ("iterations", "lr", "low_freq_from")),
            "smallest_lr": {f"{t:g}%": smallest(fcu_rows, t, seeds) for t in THRESHOLDS},
        }
        print_table(
            f"FCU's step alone ({args.preset}, seeds {seeds}; means over seeds)",
            result["fcu"]["summary"],
            ("iterations", "lr", "low_freq_from"),
        )
        for t, found in result["fcu"]["smallest_lr"].items():
            print(f"smallest lr changing >= {t} of D_f's predictions on every seed: {found}")
    if "negsub" in parts:
        result["negsub"] = {
            "rows": negsub_rows,
            "summary": summary_rows(negsub_rows, ("scaling",)),
        }
        print_table(
            f"NegSub's step alone ({args.preset}, seeds {seeds}; means over seeds)",
            result["negsub"]["summary"],
            ("scaling",),
        )
    if "control" in parts and "recovery" not in parts:
        result["control"] = {"rounds": rounds, "by_recovery_lr": recovery}
    if "recovery" in parts:
        comparison: dict[str, Any] = {}
        for lr, per_seed in recovery.items():
            print(
                f"\nNegSub + {rounds} against FT + {rounds} and FT + {rounds + 1}, recovery lr {lr}"
            )
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
            comparison[lr] = {
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
        result["recovery"] = {"rounds": rounds, "by_recovery_lr": comparison}
    if "fmnist" in parts:
        result["fmnist"] = fmnist(args, seeds, log)
    result["config"] = {
        "preset": args.preset,
        "seeds": seeds,
        "threads": 1,
        "fcu_lrs": lrs,
        "fcu_iterations": iterations,
        "thresholds_pct": list(THRESHOLDS),
        **({"recovery_lrs": list(recovery)} if "recovery" in parts else {}),
    }
    result.setdefault("seconds", {})[args.parts] = round(time.perf_counter() - began, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {args.out}")


def fmnist(args: argparse.Namespace, seeds: Sequence[int], log: Callable[[str], None]) -> Any:
    """FCU's and NegSub's steps alone on fmnist-cnn (NegSub only if cached with the history)."""
    root = Path(args.fmnist_root)
    if (
        not (root / "train-images-idx3-ubyte.gz").exists()
        and not (root / "train-images-idx3-ubyte").exists()
    ):
        log(f"fmnist: no data in {root}; skipped")
        return {"skipped": f"no Fashion-MNIST data in {root}"}
    config = load("fmnist-cnn", args.cache, [f"data.root={root}"])
    fcu_rows: list[dict[str, Any]] = []
    negsub_rows: list[dict[str, Any]] = []
    negsub_note = ""
    for seed in seeds:
        exp = Experiment(config, seed, progress=Silent())
        with_history = is_cached(exp, True)
        log(
            f"fmnist seed {seed}: pre-trained with history cached: {with_history}; without: "
            f"{is_cached(exp, False)}"
        )
        trained = pretrained(exp, with_history)
        request = exp.scenario.request
        reference = predictions(exp, trained.state, exp.split(request))
        settings = [(100, 1e-5), (460, 2.534998413252488e-05)]
        settings += [(100, lr) for lr in (1e-4, 1e-3, 1e-2, 1e-1)]
        for its, lr in settings:
            row = step_effect(exp, trained, request, FCU(iterations=its, lr=lr), reference)
            fcu_rows.append(
                {"seed": seed, "iterations": its, "lr": lr, "low_freq_from": "unlearned", **row}
            )
            log(f"  fmnist fcu it={its:<4} lr={lr:<9.3g} " + brief(row))
        if with_history:
            for scaling in ("update", "renormalize"):
                row = step_effect(exp, trained, request, NegSub(scaling=scaling), reference)  # type: ignore[arg-type]
                negsub_rows.append({"seed": seed, "scaling": scaling, **row})
                log(f"  fmnist negsub {scaling:<11} " + brief(row))
        else:
            negsub_note = "NegSub not measured: no cached pre-training with the history"
    out: dict[str, Any] = {
        "fcu": {
            "rows": fcu_rows,
            "summary": summary_rows(fcu_rows, ("iterations", "lr", "low_freq_from")),
        }
    }
    print_table(
        f"FCU's step alone (fmnist-cnn, seeds {list(seeds)})",
        out["fcu"]["summary"],
        ("iterations", "lr", "low_freq_from"),
    )
    if negsub_rows:
        out["negsub"] = {"rows": negsub_rows, "summary": summary_rows(negsub_rows, ("scaling",))}
        print_table(
            f"NegSub's step alone (fmnist-cnn, seeds {list(seeds)})",
            out["negsub"]["summary"],
            ("scaling",),
        )
    if negsub_note:
        out["negsub_note"] = negsub_note
    return out


def merge(paths: Sequence[Path], out: Path) -> None:
    """One JSON from the outputs of several runs (``--parts``), summaries from the rows."""
    result: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    controls: list[dict[str, Any]] = []
    for path in paths:
        part = json.loads(path.read_text())
        seconds.update({f"{k} ({path.name})": v for k, v in part.pop("seconds", {}).items()})
        control = part.pop("control", None)
        if control is not None:
            controls.append(control)
        recovery = part.pop("recovery", None)
        if recovery is not None:
            merged = result.setdefault("recovery", {"rounds": recovery["rounds"]})
            merged.setdefault("by_recovery_lr", {}).update(recovery["by_recovery_lr"])
        config = part.pop("config")
        config.pop("recovery_lrs", None)  # below, from the merged measurements
        result.setdefault("config", {}).update(config)
        result.update(part)
    for control in controls:  # the control's gaps to the FT runs of the same lr and seed
        rounds = control["rounds"]
        for lr, per_seed in control["by_recovery_lr"].items():
            for seed, models in per_seed.items():
                cell = result["recovery"]["by_recovery_lr"][lr][seed]
                ft = {r: cell[f"ft_{r}"]["metrics"] for r in (rounds, rounds + 1)}
                for name, values in models.items():
                    cell[name] = {"metrics": values}
                    for r, reference in ft.items():
                        cell[name][f"gap_to_ft_{r}"] = gaps(values, reference)
    keys = ("iterations", "lr", "low_freq_from")
    for holder in (result, result.get("fmnist", {})):
        if "fcu" in holder:
            holder["fcu"]["summary"] = summary_rows(holder["fcu"]["rows"], keys)
            print_table("FCU's step alone", holder["fcu"]["summary"], keys)
        if "negsub" in holder:
            holder["negsub"]["summary"] = summary_rows(holder["negsub"]["rows"], ("scaling",))
            print_table("NegSub's step alone", holder["negsub"]["summary"], ("scaling",))
    if "recovery" in result:
        result["config"]["recovery_lrs"] = list(result["recovery"]["by_recovery_lr"])
    result["seconds"] = seconds
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
