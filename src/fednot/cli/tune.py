"""``fednot tune``: the arguments and the command (docs/tuning.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from fednot.benchmark.results import REFERENCE
from fednot.cli.arguments import int_list, scenario_help
from fednot.cli.commands import check_cache, client_ids, config_of, setup_run
from fednot.environment import use_threads
from fednot.errors import ConfigError
from fednot.paths import check_writable_dir
from fednot.tune.plan import DEFAULT_TRIALS_PER_KNOB, REFINE_CAP

DESCRIPTION = f"""\
Tune every method's hyperparameters by one budget rule: a method of d knobs (its search space,
plus the recovery learning rate where recovery follows its step) gets K·d Optuna trials (K =
--trials-per-knob; the first at the published values, then random, then TPE), then up to
{REFINE_CAP} trials refining its recovery learning rate until no untried gap wider than a factor
2 is left around the best. Each trial is scored by the mean average gap to Retrain on a
validation request: another target client (--target, default: the next one after the reported
targets), other seeds (--seeds, default: 1000,1001,1002) and a test set held out of the training
split, never the request or test split the bench reports; a setting that diverges on a validation
seed is rejected. Writes tune.json (every trial, rewritten after each) and <preset>-tuned.toml,
which `fednot bench --preset PATH` runs. Running the same command on the same --out resumes.
"""


def register_cli(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``fednot tune`` to the subcommands ``sub``; ``common`` adds the config arguments."""
    p = sub.add_parser(
        "tune",
        help="tune every method's hyperparameters on a validation request (Optuna)",
        description=DESCRIPTION,
    )
    common(p)
    p.add_argument(
        "--scenario",
        help=scenario_help(),
    )
    p.add_argument(
        "--methods", help="comma-separated methods to tune (default: the preset's, but Retrain)"
    )
    p.add_argument(
        "--trials-per-knob",
        type=int,
        default=DEFAULT_TRIALS_PER_KNOB,
        help="K: a method of d knobs gets K·d search trials, then the recovery-rate refinement "
        f"(default: {DEFAULT_TRIALS_PER_KNOB})",
    )
    p.add_argument(
        "--target",
        help="comma-separated validation target clients (default: the next ids after the "
        "reported unlearn.forget_clients)",
    )
    p.add_argument(
        "--seeds",
        help="comma-separated validation seeds, none of the reported; fewer than 3 run with a "
        "warning (default: 1000,1001,1002)",
    )
    p.add_argument(
        "--sampler-seed", type=int, default=0, help="the TPE sampler's seed (default: 0)"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="methods tuned at once, each trial in a worker process with threads/jobs torch "
        "threads (default: 1); a method's trials stay sequential",
    )
    p.add_argument("--out", help="tuning folder (default: <out_dir>/tune-<preset>-tuned); resumes")
    p.set_defaults(handler=tune)


def tune(args: argparse.Namespace) -> int:
    """``fednot tune``."""
    from fednot.tune.preset import tuned_name
    from fednot.tune.study import TuneSettings
    from fednot.tune.study import tune as run_tune
    from fednot.tune.validation import seeds_warning, validation_request

    args.preset = args.preset or "mnist5k-cnn"
    loaded = config_of(args)
    _, progress = setup_run(args, loaded)  # applies --threads; the preset does not pin them
    config = replace(loaded, threads=None)
    names = config.unlearn.methods if args.methods is None else args.methods.split(",")
    methods = [n.strip() for n in names if n.strip() and n.strip() != REFERENCE]
    if not methods:
        raise ConfigError("Nothing to tune: name methods with --methods, e.g. --methods ft,not.")
    request = validation_request(config, client_ids(args.target), _seeds(args.seeds))
    out = Path(args.out or Path(config.out_dir) / f"tune-{tuned_name(args.preset)}")
    check_writable_dir(out, "the tuning folder", "--out")
    check_cache(config)
    settings = TuneSettings(trials_per_knob=args.trials_per_knob, seed=args.sampler_seed)
    if warning := seeds_warning(request.seeds):
        print(f"warning: {warning}", file=sys.stderr)
    if args.jobs > 1:  # every trial, and the pre-training it reads, with threads // jobs
        use_threads(max(1, torch.get_num_threads() // args.jobs))
    outcome = run_tune(
        config,
        methods,
        request,
        out,
        settings=settings,
        preset=args.preset,
        progress=progress,
        jobs=args.jobs,
    )
    print(summary_table(outcome.log))
    for name, reason in outcome.skipped.items():
        print(f"- {name}: not tuned ({reason})")
    print(
        f"\nSearch log: {outcome.log}\nTuned preset: {outcome.preset}\n"
        f"Run it: fednot bench --preset {outcome.preset}"
    )
    return 0


def summary_table(log_path: Path) -> str:
    """Per method: trials, the published setting's objective, the best one's, the best values."""
    import json

    data = json.loads(log_path.read_text())
    lines = [
        "| method | trials (search + refinement) | avg gap, published (trial 1) | avg gap, best "
        "| best values | recovery lr refinement |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in data["methods"].items():
        trials, best, refined = entry["trials"], entry["best"], entry["refinement"]
        first = trials[0]["objective"] if trials else None
        values = ", ".join(f"{k} = {v!r}" for k, v in (best or {}).get("params", {}).items())
        refine = sum(t["phase"] == "refine" for t in trials)
        lines.append(
            f"| {name} | {entry['n_trials'] - refine} + {refine} | {_gap(first)} | "
            f"{_gap(best and best['objective'])} | {values or '— (every trial rejected)'} | "
            f"{'—' if refined is None else refined['status']} |"
        )
    return "\n".join(lines)


def _gap(value: float | None) -> str:
    return "rejected" if value is None else f"{value:.3f}"


def _seeds(text: str | None) -> tuple[int, ...] | None:
    return int_list(text, "seeds", "--seeds 1000,1001")
