"""Implementations of the ``fednot`` subcommands."""

from __future__ import annotations

import argparse
import inspect
import json
import os
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from fednot.benchmark.experiment import Experiment
from fednot.benchmark.preflight import check_state
from fednot.benchmark.runner import Run, default_run_dir
from fednot.benchmark.sequence_run import SequenceRun
from fednot.benchmark.summary import MethodSummary
from fednot.benchmark.tables import format_interval
from fednot.checkpoint import load_checkpoint, save_checkpoint
from fednot.cli.arguments import int_list, method_names, selection_overrides
from fednot.cli.terminal import terminal_summary
from fednot.config import RunConfig
from fednot.configio import as_overrides, load_config
from fednot.environment import use_threads
from fednot.errors import ConfigError
from fednot.paths import check_writable_dir, check_writable_file, name_part
from fednot.presets import read_toml
from fednot.progress import Progress, Silent
from fednot.types import ForgetRequest
from fednot.unlearning.registry import unlearner_class, unlearner_names


def setup_run(args: argparse.Namespace, config: RunConfig) -> tuple[RunConfig, Progress]:
    """Apply the thread count and record it in the configuration; the progress reporter."""
    config = replace(config, threads=use_threads(config.threads))
    return config, progress_of(args)


def progress_of(args: argparse.Namespace) -> Progress:
    """The progress reporter: silent with ``-q`` or under CI (``CI=1`` or ``CI=true``)."""
    quiet = getattr(args, "quiet", False) or os.environ.get("CI", "").lower() in ("1", "true")
    return Silent() if quiet else Progress()


def client_ids(text: str | None) -> tuple[int, ...] | None:
    """Comma-separated client ids (``--forget-clients``, ``--target``), or ``None``."""
    return int_list(text, "client ids", "--forget-clients 0,3")


def _threads(args: argparse.Namespace) -> list[str]:
    threads = getattr(args, "threads", None)
    return [] if threads is None else [f"threads={threads}"]


def config_of(args: argparse.Namespace, extra: list[str] | None = None) -> RunConfig:
    """The configuration the arguments name, each part over the ones before it.

    The preset, the scenario, ``-c FILE``, ``--set``, ``--methods`` and ``--seeds``, ``extra``,
    then ``--threads``.
    """
    overrides = [*args.overrides, *selection_overrides(args), *(extra or []), *_threads(args)]
    return load_config(
        args.config, overrides, preset=args.preset, scenario=getattr(args, "scenario", None)
    )


def _from_checkpoint(
    args: argparse.Namespace, extra: list[str] | None = None
) -> tuple[dict[str, Any], RunConfig]:
    """A checkpoint and its configuration, updated by ``-c FILE``, then ``--set``, then ``extra``.

    The checkpoint fixes data, model and pre-training; the file and the overrides may change the
    unlearning and evaluation settings (`fednot.checkpoint.load_checkpoint` refuses the rest).
    """
    if args.preset is not None:
        raise ConfigError(
            "--preset does not apply to a checkpoint: its configuration fixes data, model and "
            "training. Change unlearning or evaluation settings with -c FILE or --set KEY=VALUE."
        )
    from_file = as_overrides(read_toml(args.config)) if args.config else []
    overrides = [*from_file, *args.overrides, *(extra or []), *_threads(args)]
    return load_checkpoint(Path(args.checkpoint), overrides, trust_code=args.trust_code)


def _out_folder(args: argparse.Namespace, config: RunConfig, name: str) -> Path:
    """``--out``, else ``<out_dir>/<name>-<time>``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(args.out) if args.out else Path(config.out_dir) / f"{name_part(name)}-{stamp}"


def check_cache(config: RunConfig) -> None:
    """Refuse an unwritable model cache before any work."""
    if config.cache_dir:
        check_writable_dir(Path(config.cache_dir), "the model cache", "--set cache_dir=PATH")


def run(args: argparse.Namespace) -> int:
    """``fednot run``; with ``--jobs J``, J cells at once with ``threads // J`` threads each."""
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}.")
    config, progress = setup_run(args, config_of(args))
    if args.jobs > 1:  # the count each cell trains with is the one recorded and in the keys
        assert config.threads is not None  # setup_run resolved it
        config = replace(config, threads=use_threads(max(1, config.threads // args.jobs)))
    run_dir = Path(args.out) if args.out else default_run_dir(config)
    check_writable_dir(run_dir, "the run folder", "--out")
    check_cache(config)
    if config.scenario.kind == "sequence":  # chains of requests, a run directory of its own
        sequence = SequenceRun(config, run_dir, progress=progress, jobs=args.jobs)
        summaries = sequence.execute()
        print(sequence_summary(summaries, run_dir))
        return 0
    runner = Run(config, run_dir, progress=progress, jobs=args.jobs)
    summary = runner.execute()
    print(terminal_summary(config, summary, run_dir, runner.not_applicable))
    return 0


def sequence_summary(summaries: list[list[MethodSummary]], run_dir: Path) -> str:
    """Each request's average gap per method, and where the results are."""
    lines = []
    for k, summary in enumerate(summaries):
        gaps = ", ".join(
            f"{row.title} {format_interval(row.avg_gap)}" for row in summary if row.avg_gap
        )
        lines.append(f"request {k + 1}: average gap to Retrain: {gaps}")
    lines.append(f"results: {run_dir / 'results.md'} (figure: sequence.png)")
    return "\n".join(lines)


BENCH_PRESET = "mnist5k-cnn"
"""The preset ``fednot bench`` and ``fednot audit`` start from unless ``--preset`` names one."""


def bench(args: argparse.Namespace) -> int:
    """``fednot bench``: `run` over a preset, `BENCH_PRESET` unless ``--preset`` names another."""
    use_preset(args, "bench")
    return run(args)


def use_preset(args: argparse.Namespace, command: str) -> None:
    """Set ``args.preset`` to `BENCH_PRESET` if none is given, and say which preset applies."""
    line = f"preset: {args.preset}"
    if args.preset is None:
        args.preset = BENCH_PRESET
        line = (
            f"preset: {BENCH_PRESET} (the default of fednot {command}; --preset to choose another)"
        )
    if args.config:
        line += f"; -c {args.config} applied over it"
    progress_of(args).info(line)


def study(args: argparse.Namespace) -> int:
    """``fednot ablate KIND`` and ``fednot analyze KIND``."""
    from fednot.analysis.common import Study
    from fednot.analysis.registry import analysis

    config, progress = setup_run(args, config_of(args))
    options = {}
    for text in args.params:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Expected --param KEY=VALUE, got {text!r}.")
        options[key.strip()] = value.strip()
    function = analysis(args.group, args.kind, options)
    out = _out_folder(args, config, f"{args.group}-{args.kind}")
    check_writable_dir(out, "the output folder", "--out")
    check_cache(config)
    path = function(Study(config, out, progress, options))
    print(f"Report written to {path} (figures and data beside it)")
    return 0


def audit(args: argparse.Namespace) -> int:
    """``fednot audit``: the forgetting-quality score against N retrained models."""
    from fednot.audit import Audit

    names = method_names(args.methods)
    if not names:
        raise ConfigError("--methods names no method; give e.g. --methods ft,not.")
    use_preset(args, "audit")
    config, progress = setup_run(args, config_of(args, [f"unlearn.methods={json.dumps(names)}"]))
    seed = config.seeds[0] if args.seed is None else args.seed
    out = _out_folder(args, config, f"audit-{config.data.dataset}")
    check_writable_dir(out, "the audit folder", "--out")
    check_cache(config)
    Audit(config, out, models=args.models, seed=seed, jobs=args.jobs, progress=progress).execute()
    print((out / "audit.md").read_text())
    print(f"Audit written to {out}/ (audit.md, audit.json, audit.png, outputs.json, config.toml)")
    return 0


def report(args: argparse.Namespace) -> int:
    """``fednot report RUN_DIR``."""
    from fednot.analysis.report import build_report

    path = build_report(Path(args.run_dir))
    print(f"Report written to {path}")
    return 0


def train(args: argparse.Namespace) -> int:
    """``fednot train``."""
    config, progress = setup_run(args, config_of(args))
    check_writable_file(Path(args.out), "the checkpoint", "--out")
    check_cache(config)
    seed = config.seeds[0] if args.seed is None else args.seed
    exp = Experiment(config, seed, progress=progress)
    exp.check_request()  # the checkpoint's request must be evaluable later
    trained = exp.pretrain()
    save_checkpoint(
        Path(args.out), trained.state, config, seed, "pretrain", log=trained.log.to_dict()
    )
    final = trained.log.rounds[-1].val_acc
    print(f"Pre-trained model written to {args.out} (final val. acc. {final:.2f}%)")
    return 0


def unlearn(args: argparse.Namespace) -> int:
    """``fednot unlearn``."""
    overrides = []
    clients = client_ids(args.forget_clients)
    if clients is not None:
        overrides.append(f"unlearn.forget_clients={list(clients)}")
    if args.method not in unlearner_names():
        unlearner_class(args.method)  # raises with the list of known methods
    if args.weights_only:
        if "negate_bias" not in inspect.signature(unlearner_class(args.method)).parameters:
            raise ConfigError(
                f"--weights-only applies to methods that negate a layer (not, not_wb); "
                f"{args.method!r} has no such option."
            )
        overrides.append(f"options.{json.dumps(args.method)}.negate_bias=false")
    overrides.append(f"unlearn.methods={json.dumps([args.method])}")
    check_writable_file(
        Path(args.out), "the unlearned checkpoint", "--out", inputs=(Path(args.checkpoint),)
    )
    payload, config = _from_checkpoint(args, overrides)
    config, progress = setup_run(args, config)
    seed = int(payload["seed"])
    exp = Experiment(config, seed, progress=progress)
    request = ForgetRequest(clients=config.unlearn.forget_clients)
    exp.check_request(request)
    check_state(exp.model, payload["state"], args.checkpoint)
    outcome = exp.unlearn(payload["state"], request, args.method)
    save_checkpoint(
        Path(args.out),
        outcome.state,
        config,
        seed,
        "unlearned",
        method=args.method,
        request=request.to_dict(),
        log=outcome.log.to_dict(),
        comm_bytes=outcome.costs.comm_bytes,
        flops=outcome.costs.flops,
    )
    print(
        f"{args.method}: {len(outcome.log.rounds)} recovery rounds, {outcome.costs.comm_bytes:.3e} "
        f"bytes, {outcome.costs.flops:.3e} FLOPs; model written to {args.out}"
    )
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """``fednot eval``."""
    payload, config = _from_checkpoint(args)
    config, progress = setup_run(args, config)
    clients = client_ids(args.forget_clients)
    if clients is None:
        stored = payload.get("request") or {}
        clients = tuple(stored.get("clients", config.unlearn.forget_clients))
    exp = Experiment(config, int(payload["seed"]), progress=progress)
    request = ForgetRequest(clients=clients)
    exp.check_request(request)
    check_state(exp.model, payload["state"], args.checkpoint)
    metrics = exp.evaluate(payload["state"], request)
    print(
        json.dumps(
            {"checkpoint": args.checkpoint, "forget_clients": list(clients), **metrics.to_dict()},
            indent=2,
        )
    )
    return 0


__all__ = [
    "audit",
    "bench",
    "default_run_dir",
    "evaluate",
    "report",
    "run",
    "study",
    "train",
    "unlearn",
]
