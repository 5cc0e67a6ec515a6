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

This file is the command line; the measurement is in ``step_effect_measure.py``, the recovery
comparison in ``step_effect_recovery.py``, the summaries and ``--merge`` in
``step_effect_tables.py`` (siblings, imported from this folder).

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
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from step_effect_measure import (
    FCU_PUBLISHED_AND_TUNED,
    brief,
    fcu_grid,
    is_cached,
    load,
    negsub_steps,
    predictions,
    pretrained,
    smallest,
    step_effect,
)
from step_effect_recovery import comparison, recovered
from step_effect_tables import FCU_KEYS, NEGSUB_KEYS, merge, summarized, write

from fednot.benchmark.experiment import Experiment
from fednot.progress import Silent
from fednot.unlearning.fcu import FCU

FCU_LRS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 1e-2, 1e-1)
FCU_ITERATIONS = (100, 500)
NEGSUB_SCALINGS = ("update", "renormalize", "p_u", "one")
THRESHOLDS = (1.0, 10.0)
FMNIST_FCU_LRS = (1e-4, 1e-3, 1e-2, 1e-1)  # at 100 iterations, after the published and tuned


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
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
    return parser


def main() -> None:
    """Measure, print tables, write the JSON (or, with ``--merge``, merge earlier outputs)."""
    args = build_parser().parse_args()
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
    recovery_lrs = [float(x) for x in args.recovery_lrs.split(",")]
    fcu_rows, negsub_rows, recovery = measure_preset(
        config, seeds, parts, lrs, iterations, args.long_max_lr, recovery_lrs, log
    )
    title = f"({args.preset}, seeds {seeds}; means over seeds)"
    if "fcu" in parts:
        result["fcu"] = fcu_part(fcu_rows, seeds, title)
    if "negsub" in parts:
        result["negsub"] = summarized(negsub_rows, NEGSUB_KEYS, f"NegSub's step alone {title}")
    if "control" in parts and "recovery" not in parts:
        result["control"] = {"rounds": rounds, "by_recovery_lr": recovery}
    if "recovery" in parts:
        result["recovery"] = {"rounds": rounds, "by_recovery_lr": comparison(recovery, rounds)}
    if "fmnist" in parts:
        result["fmnist"] = fmnist(Path(args.fmnist_root), args.cache, seeds, log)
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
    write(result, args.out)
    log(f"wrote {args.out}")


def measure_preset(
    config: Any,
    seeds: Sequence[int],
    parts: set[str],
    lrs: Sequence[float],
    iterations: Sequence[int],
    long_max_lr: float,
    recovery_lrs: Sequence[float],
    log: Callable[[str], None],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The parts on the preset, per seed: FCU's grid, NegSub's steps, the recovery runs.

    Returns FCU's and NegSub's rows, and `recovered`'s models per recovery lr and seed.
    """
    runs = {"negsub", "ft"} if "recovery" in parts else set()
    runs |= {"control"} if "control" in parts else set()
    fcu_rows: list[dict[str, Any]] = []
    negsub_rows: list[dict[str, Any]] = []
    recovery: dict[str, dict[str, Any]] = {}
    for seed in seeds if parts & {"fcu", "negsub", "recovery", "control"} else ():
        exp = Experiment(config, seed, progress=Silent())
        log(f"seed {seed}: pre-trained model cached: {is_cached(exp, True)}")
        trained = pretrained(exp, True)
        request = exp.scenario.request
        reference = predictions(exp, trained.state, exp.split(request))
        if "fcu" in parts:
            rows = fcu_grid(exp, trained, request, lrs, iterations, reference, log, long_max_lr)
            fcu_rows += [{"seed": seed, **r} for r in rows]
        if "negsub" in parts:
            rows = negsub_steps(exp, trained, request, NEGSUB_SCALINGS, reference, log)
            negsub_rows += [{"seed": seed, **r} for r in rows]
        for lr in recovery_lrs if runs else ():
            log(f"  recovery at lr {lr:g}")
            recovery.setdefault(f"{lr:g}", {})[str(seed)] = recovered(
                exp, trained, request, lr, config.unlearn.recovery_rounds, log, frozenset(runs)
            )
    return fcu_rows, negsub_rows, recovery


def fcu_part(rows: list[dict[str, Any]], seeds: Sequence[int], title: str) -> dict[str, Any]:
    """FCU's grid: its rows, summary and smallest rates per threshold, printed."""
    part = summarized(rows, FCU_KEYS, f"FCU's step alone {title}")
    part["smallest_lr"] = {f"{t:g}%": smallest(rows, t, seeds) for t in THRESHOLDS}
    for t, found in part["smallest_lr"].items():
        print(f"smallest lr changing >= {t} of D_f's predictions on every seed: {found}")
    return part


def fmnist(
    root: Path, cache: str, seeds: Sequence[int], log: Callable[[str], None]
) -> dict[str, Any]:
    """FCU's and NegSub's steps alone on fmnist-cnn (NegSub only if cached with the history)."""
    if (
        not (root / "train-images-idx3-ubyte.gz").exists()
        and not (root / "train-images-idx3-ubyte").exists()
    ):
        log(f"fmnist: no data in {root}; skipped")
        return {"skipped": f"no Fashion-MNIST data in {root}"}
    config = load("fmnist-cnn", cache, [f"data.root={root}"])
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
        for its, lr in (*FCU_PUBLISHED_AND_TUNED, *((100, x) for x in FMNIST_FCU_LRS)):
            row = step_effect(exp, trained, request, FCU(iterations=its, lr=lr), reference)
            fcu_rows.append(
                {"seed": seed, "iterations": its, "lr": lr, "low_freq_from": "unlearned", **row}
            )
            log(f"  fmnist fcu it={its:<4} lr={lr:<9.3g} " + brief(row))
        if with_history:
            scalings = ("update", "renormalize")
            rows = negsub_steps(exp, trained, request, scalings, reference, log, "  fmnist ")
            negsub_rows += [{"seed": seed, **r} for r in rows]
        else:
            negsub_note = "NegSub not measured: no cached pre-training with the history"
    title = f"(fmnist-cnn, seeds {list(seeds)})"
    out: dict[str, Any] = {"fcu": summarized(fcu_rows, FCU_KEYS, f"FCU's step alone {title}")}
    if negsub_rows:
        out["negsub"] = summarized(negsub_rows, NEGSUB_KEYS, f"NegSub's step alone {title}")
    if negsub_note:
        out["negsub_note"] = negsub_note
    return out


if __name__ == "__main__":
    main()
