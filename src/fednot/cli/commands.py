"""Implementations of the ``fednot`` subcommands."""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime
from pathlib import Path

import torch

from fednot.checkpoint import load_checkpoint, save_checkpoint
from fednot.config import RunConfig
from fednot.configio import load_config, to_toml
from fednot.errors import ConfigError
from fednot.experiment import Experiment
from fednot.presets import preset_description, preset_names, scenario_names
from fednot.progress import Progress, Silent
from fednot.runner import Run, default_run_dir
from fednot.tables import main_table, statements
from fednot.types import ForgetRequest
from fednot.unlearning.registry import unlearner_class, unlearner_names


def _setup(args: argparse.Namespace, config: RunConfig) -> Progress:
    threads = args.threads or config.threads
    if threads:
        torch.set_num_threads(threads)
    quiet = args.quiet or os.environ.get("CI", "").lower() in ("1", "true")
    return Silent() if quiet else Progress()


def _clients(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as e:
        raise ConfigError(f"Expected comma-separated client ids, got {text!r}.") from e


def _config(args: argparse.Namespace, extra: list[str] | None = None) -> RunConfig:
    return load_config(
        args.config, [*args.overrides, *(extra or [])], preset=args.preset,
        scenario=getattr(args, "scenario", None),
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """``fednot run``."""
    config = _config(args)
    progress = _setup(args, config)
    run_dir = Path(args.out) if args.out else default_run_dir(config)
    runner = Run(config, run_dir, progress=progress)
    summary = runner.execute()
    print(main_table(summary, runner.not_applicable))
    print("\n" + statements(summary, config.unlearn.recovery_rounds))
    print(
        f"\nResults written to {run_dir}/ (results.md, results.json, results.csv, results.png, "
        "tradeoff.png, config.toml, partitions)"
    )
    return 0


def bench(args: argparse.Namespace) -> int:
    """``fednot bench``: `run` with a preset (default mnist5k-cnn) and method/seed shortcuts."""
    extra = []
    if args.methods:
        names = unlearner_names() if args.methods == "all" else args.methods.split(",")
        extra.append(f"unlearn.methods={json.dumps([n.strip() for n in names if n.strip()])}")
    if args.seeds:
        extra.append(f"seeds=[{args.seeds}]")
    args.preset = args.preset or "mnist5k-cnn"
    args.overrides = [*args.overrides, *extra]
    return run(args)


def study(args: argparse.Namespace) -> int:
    """``fednot ablate KIND`` and ``fednot analyze KIND``."""
    from fednot.analysis.common import Study
    from fednot.analysis.registry import analysis

    extra = [f"seeds=[{args.seeds}]"] if args.seeds else []
    config = _config(args, extra)
    progress = _setup(args, config)
    options = {}
    for text in args.params:
        key, sep, value = text.partition("=")
        if not sep:
            raise ConfigError(f"Expected --param KEY=VALUE, got {text!r}.")
        options[key.strip()] = value.strip()
    function = analysis(args.group, args.kind)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path(config.out_dir) / f"{args.group}-{args.kind}-{stamp}"
    path = function(Study(config, out, progress, options))
    print(f"Report written to {path} (figures and data beside it)")
    return 0


def report(args: argparse.Namespace) -> int:
    """``fednot report RUN_DIR``."""
    from fednot.analysis.report import build_report

    path = build_report(Path(args.run_dir))
    print(f"Report written to {path}")
    return 0


def presets(args: argparse.Namespace) -> int:
    """``fednot presets``."""
    for name in preset_names():
        print(f"{name:20s} {preset_description(name)}")
    print("\nScenarios (fednot bench --scenario NAME): " + ", ".join(scenario_names()))
    return 0


def train(args: argparse.Namespace) -> int:
    """``fednot train``."""
    config = _config(args)
    progress = _setup(args, config)
    seed = config.seeds[0] if args.seed is None else args.seed
    exp = Experiment(config, seed, progress=progress)
    trained = exp.pretrain()
    save_checkpoint(
        Path(args.out), trained.state, config, seed, "pretrain", log=trained.log.to_dict()
    )
    final = trained.log.rounds[-1].val_acc
    print(f"Pre-trained model written to {args.out} (final val. acc. {final:.2f}%)")
    return 0


def unlearn(args: argparse.Namespace) -> int:
    """``fednot unlearn``."""
    overrides = list(args.overrides)
    clients = _clients(args.forget_clients)
    if clients is not None:
        overrides.append(f"unlearn.forget_clients={list(clients)}")
    if args.weights_only:
        overrides.append(f"options.{args.method}.negate_bias=false")
    if args.method not in unlearner_names():
        unlearner_class(args.method)  # raises with the list of known methods
    overrides.append(f"unlearn.methods={json.dumps([args.method])}")
    payload, config = load_checkpoint(Path(args.checkpoint), overrides)
    progress = _setup(args, config)
    seed = int(payload["seed"])
    exp = Experiment(config, seed, progress=progress)
    request = ForgetRequest(clients=config.unlearn.forget_clients)
    outcome = exp.unlearn(payload["state"], request, args.method)
    save_checkpoint(
        Path(args.out), outcome.state, config, seed, "unlearned", method=args.method,
        request=request.to_dict(), log=outcome.log.to_dict(),
        comm_bytes=outcome.costs.comm_bytes, flops=outcome.costs.flops,
    )  # fmt: skip
    print(
        f"{args.method}: {len(outcome.log.rounds)} recovery rounds, {outcome.costs.comm_bytes:.3e} "
        f"bytes, {outcome.costs.flops:.3e} FLOPs; model written to {args.out}"
    )
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """``fednot eval``."""
    payload, config = load_checkpoint(Path(args.checkpoint), args.overrides)
    _setup(args, config)
    clients = _clients(args.forget_clients)
    if clients is None:
        stored = payload.get("request") or {}
        clients = tuple(stored.get("clients", config.unlearn.forget_clients))
    exp = Experiment(config, int(payload["seed"]))
    metrics = exp.evaluate(payload["state"], ForgetRequest(clients=clients))
    print(
        json.dumps(
            {"checkpoint": args.checkpoint, "forget_clients": list(clients), **metrics.to_dict()},
            indent=2,
        )
    )
    return 0


def show_config(args: argparse.Namespace) -> int:
    """``fednot config``."""
    print(to_toml(_config(args)), end="")
    return 0


def methods(args: argparse.Namespace) -> int:
    """``fednot methods``."""
    for name in unlearner_names():
        cls = unlearner_class(name)
        print(f"{name:10s} {cls.title or name:10s} needs: {cls.requirements.describe()}")
    return 0


__all__ = [
    "bench", "default_run_dir", "evaluate", "methods", "presets", "report", "run", "show_config",
    "study", "train", "unlearn",
]  # fmt: skip
