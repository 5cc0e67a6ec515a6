"""The ``fednot`` command: wiring of the subcommands only."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence

from fednot.cli import commands, listings
from fednot.cli.arguments import add_config_arguments, add_selection_arguments, scenario_help
from fednot.cli.flower import register_cli as register_flower
from fednot.cli.ledger import register_cli as register_ledger
from fednot.cli.tune import register_cli as register_tune
from fednot.errors import FedNotError
from fednot.version import __version__


def _common(
    parser: argparse.ArgumentParser, *, checkpoint: bool = False, quiet: bool = True
) -> None:
    add_config_arguments(parser, checkpoint=checkpoint)
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads, recorded in the configuration and the cache keys (default: "
        "torch's choice, the number of cores)",
    )
    if quiet:
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    if checkpoint:
        parser.add_argument(
            "--trust-code",
            action="store_true",
            help="let the checkpoint's configuration import the code it names (import strings "
            "such as 'pkg.module:attr'); without it such a checkpoint is refused",
        )


def _jobs(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help=f"{what} at once, each in a worker process with threads/jobs torch threads "
        "(default: 1; 2 is faster on 2 cores)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fednot``."""
    parser = argparse.ArgumentParser(
        prog="fednot",
        description="Federated unlearning with NoT (weight negation) and its baselines.",
    )
    parser.add_argument("--version", action="version", version=f"fednot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="the whole pipeline: pre-train, unlearn with each method, evaluate",
        description="Pre-train, unlearn with each method, evaluate, over the configuration's "
        "seeds. The configuration starts from fednot's defaults (`fednot config` prints them), "
        "or from --preset.",
    )
    _common(p)
    add_selection_arguments(p)
    _jobs(p, "cells (a method on a seed)")
    p.add_argument("--out", help="run directory (default: <out_dir>/<dataset>-<model>-<time>)")
    p.set_defaults(handler=commands.run)

    p = sub.add_parser(
        "bench",
        help=f"compare methods over seeds (default preset: {commands.BENCH_PRESET})",
        description=f"`fednot run` over a preset: {commands.BENCH_PRESET} unless --preset names "
        "another, so the same seed gives other numbers than `fednot run`, which starts from "
        "fednot's defaults. --scenario and -c FILE apply over that preset, then --set, --methods "
        "and --seeds. The preset applied is printed first (not with -q).",
    )
    _common(p)
    p.add_argument(
        "--scenario",
        help=scenario_help(),
    )
    add_selection_arguments(p)
    _jobs(p, "cells (a method on a seed)")
    p.add_argument("--out", help="run directory (default: <out_dir>/<dataset>-<model>-<time>)")
    p.set_defaults(handler=commands.bench)
    register_tune(sub, _common)  # `fednot tune` (fednot.cli.tune)

    for group, kinds, text in (
        ("ablate", ("layers", "perturbation", "forget-ratio"), "ablations of NoT, as figures"),
        (
            "analyze",
            ("recovery", "cka", "lwo", "sensitivity"),
            "analyses of why NoT works, and of the recovery learning rate, as figures",
        ),
    ):
        p = sub.add_parser(group, help=text)
        p.add_argument("kind", choices=kinds)
        _common(p)
        add_selection_arguments(p, methods=False)
        p.add_argument(
            "--param",
            dest="params",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="an option of the analysis, e.g. counts=1,5,9 (forget-ratio), within=1.0 "
            "(recovery), samples=1000 (cka), rounds=30 (lwo), kinds=negate,noise (perturbation)",
        )
        p.add_argument("--out", help="output folder (default: <out_dir>/<group>-<kind>-<time>)")
        p.set_defaults(handler=commands.study, group=group)

    p = sub.add_parser(
        "audit",
        help="forgetting quality: N unlearned models per method against N retrained models",
        description="The NeurIPS 2023 Machine Unlearning Challenge's forgetting-quality score "
        "(docs/audit.md). Retrained models are cached and shared between audits; an "
        "interrupted audit resumes in the same --out folder.",
    )
    _common(p)
    p.add_argument(
        "--scenario",
        help=scenario_help(),
    )
    p.add_argument(
        "--methods",
        default="ft,not",
        help="comma-separated methods to audit; Retrain is always audited (default: ft,not)",
    )
    p.add_argument("--models", type=int, default=32, help="N, models per method (default: 32)")
    _jobs(p, "models trained")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the data, request and original model (default: the first of `seeds`)",
    )
    p.add_argument("--out", help="audit folder (default: <out_dir>/audit-<dataset>-<time>)")
    p.set_defaults(handler=commands.audit)

    p = sub.add_parser("report", help="one Markdown file (figures embedded) of a folder's results")
    p.add_argument("run_dir", help="a run or analysis output folder")
    p.set_defaults(handler=commands.report)

    p = sub.add_parser("train", help="FedAvg pre-training to a checkpoint")
    _common(p)
    p.add_argument(
        "--seed", type=int, default=None, help="run seed (default: the first of `seeds`)"
    )
    p.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    p.set_defaults(handler=commands.train)

    p = sub.add_parser("unlearn", help="apply a method to a checkpoint for a forget request")
    _common(p, checkpoint=True)
    p.add_argument("--checkpoint", required=True, help="checkpoint written by `fednot train`")
    p.add_argument("--method", default="not", help="method name (see `fednot methods`)")
    p.add_argument("--forget-clients", help="comma-separated client ids (default: from the config)")
    p.add_argument(
        "--weights-only",
        action="store_true",
        help="NoT: negate weights only (what `not` does; makes `not_wb` do the same)",
    )
    p.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    p.set_defaults(handler=commands.unlearn)

    p = sub.add_parser("eval", help="retain/forget/test accuracy and MIA of a checkpoint")
    _common(p, checkpoint=True, quiet=False)
    p.add_argument("--checkpoint", required=True, help="checkpoint written by fednot")
    p.add_argument(
        "--forget-clients", help="comma-separated client ids (default: the checkpoint's)"
    )
    p.set_defaults(handler=commands.evaluate)

    p = sub.add_parser(
        "config",
        help="print the resolved configuration as TOML, every key and method option",
        description="Print the resolved configuration as TOML: every key (unset ones as "
        "`# key = None`), then the options of each method run with their defaults, as comments.",
    )
    _common(p, quiet=False)
    p.set_defaults(handler=listings.show_config)

    p = sub.add_parser(
        "methods", help="list the unlearning methods: what each does, where it applies, its needs"
    )
    p.set_defaults(handler=listings.methods)

    p = sub.add_parser("presets", help="list the shipped hyperparameter presets")
    p.set_defaults(handler=listings.presets)

    register_flower(sub)  # `fednot flower up`; imports flwr only when it runs
    register_ledger(sub)  # `fednot ledger show`
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fednot`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except FedNotError as e:
        print(f"fednot: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file system failure during the work (disk full, permissions)
        if e.filename is None and e.errno not in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
            raise
        where = f" {e.filename}" if e.filename else ""
        print(
            f"fednot: error: cannot read or write{where}: {e.strerror or e}. Finished rounds and "
            "cells are saved; free space or fix permissions, then run the same command again.",
            file=sys.stderr,
        )
        return 1
    except (MemoryError, RuntimeError) as e:  # numpy's MemoryError; torch's allocator raises
        if isinstance(e, RuntimeError) and not _out_of_memory(e):  # RuntimeError, as on a GPU
            raise
        print(
            f"fednot: error: out of memory ({_first_line(e)}). A setting asks for more than this "
            "machine holds: lower the sizes it scales with (batch sizes, eval.mia_repeats, "
            "eval.mia_null_permutations, data.image_size, model widths) or use fewer worker "
            "processes (--jobs). Finished rounds and cells are saved.",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(
            "\nfednot: interrupted. Finished rounds and cells are saved; run the same command "
            "again to resume.",
            file=sys.stderr,
        )
        return 130


def _out_of_memory(error: RuntimeError) -> bool:
    """Whether torch's ``RuntimeError`` reports a failed allocation (CPU or GPU)."""
    text = str(error)
    return any(
        phrase in text for phrase in ("can't allocate memory", "out of memory", "not enough memory")
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
