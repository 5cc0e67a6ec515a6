"""``fednot flower up``: a local Flower deployment that pre-trains, then serves forget requests.

This module only declares the subcommand; it imports neither flwr nor
`fednot.integrations.flower` until the command runs, so ``fednot`` works without the extra.
`fednot.cli.app` wires it with ``register_cli(subparsers)``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fednot.cli.arguments import add_config_arguments
from fednot.configio import load_config, to_toml
from fednot.errors import ConfigError, FedNotError


def register_cli(subparsers: Any) -> None:
    """Add ``fednot flower up`` to ``subparsers`` (an argparse sub-parsers action)."""
    flower = subparsers.add_parser("flower", help="run fednot on Flower (needs fednot[flower])")
    actions = flower.add_subparsers(dest="flower_command", required=True, metavar="ACTION")
    up = actions.add_parser(
        "up",
        help="start a SuperLink and one SuperNode per client on 127.0.0.1, pre-train, unlearn "
        "the clients' requests, stop everything",
    )
    add_config_arguments(up)
    up.add_argument("--seed", type=int, default=-1, help="run seed (default: the first of seeds)")
    up.add_argument(
        "--method",
        action="append",
        dest="methods",
        metavar="METHOD",
        help="unlearning method (repeatable: each serves the requests in its own Flower run on "
        "the same deployment; default: not)",
    )
    up.add_argument(
        "--forget",
        action="append",
        default=[],
        metavar="CLIENT=REQUEST",
        help="a client's own request, filed after pre-training: 1=client, 2=classes=0,3 or "
        "3=indices=10,11 (repeatable)",
    )
    up.add_argument("--out", help="working folder: FLWR_HOME, logs, app, results (default: temp)")
    up.add_argument(
        "--single-run",
        action="store_true",
        help="each method's run pre-trains and unlearns (needed by methods that read the "
        "training history); default: one pre-training run and a checkpoint every method starts "
        "from",
    )
    up.add_argument(
        "--ledger",
        metavar="FILE",
        help="deletion ledger keyed by client id: clients it forgot take no part, each request "
        "served leaves a receipt (one --method only; docs/flower.md)",
    )
    up.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per run")
    up.set_defaults(handler=flower_up)


def parse_forget(items: list[str]) -> dict[int, str]:
    """``["1=client", "2=classes=0,3"]`` as ``{1: "client", 2: "classes=0,3"}``."""
    requests: dict[int, str] = {}
    for item in items:
        client, sep, text = item.partition("=")
        if not sep or not client.strip().isdigit() or not text:
            raise ConfigError(f"Expected --forget CLIENT=REQUEST (e.g. 1=client), got {item!r}.")
        requests[int(client)] = text
    return requests


def flower_up(args: argparse.Namespace) -> int:
    """Handler of ``fednot flower up``."""
    try:
        from fednot.integrations.flower.local.deploy import check_methods, deploy
    except ImportError as e:
        raise FedNotError(str(e)) from e
    methods = tuple(args.methods or ("not",))
    ledger = Path(args.ledger) if args.ledger else None
    check_methods(methods, args.single_run, ledger)  # before anything starts
    config = load_config(args.config, args.overrides, preset=args.preset)
    if config.threads is None:  # N SuperNodes share this machine's cores
        config = load_config(args.config, [*args.overrides, "threads=1"], preset=args.preset)
    forget = parse_forget(args.forget)
    print(f"Starting a SuperLink and {config.data.num_clients} SuperNodes on 127.0.0.1 ...")
    done = deploy(
        to_toml(config),
        config.data.num_clients,
        seed=args.seed,
        methods=methods,
        forget=forget,
        workdir=Path(args.out) if args.out else None,
        single_run=args.single_run,
        timeout=args.timeout,
        echo=True,
        ledger=ledger,
    )
    print(
        f"Federation up in {done.up_seconds:.1f} s; runs took "
        f"{', '.join(f'{r.seconds:.1f} s' for r in done.runs)}."
    )
    print(json.dumps({method: _summary(r) for method, r in done.results.items()}, indent=2))
    print(
        f"Everything stopped. Results: {done.workdir / 'out'}/<method>/result.json; logs: "
        f"{done.workdir / 'logs'}"
    )
    if ledger:
        print(f"Receipts: fednot ledger show {ledger}")
    return 0


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "pretrain_test_acc": result["pretrain_test_acc"],
        "requests": [
            {k: r[k] for k in ("request", "method", "excluded", "test_acc", "forget_acc")}
            for r in result["requests"]
        ],
        "refused": result["refused"],
        "bytes_sent": result["bytes_sent"],
        "bytes_received": result["bytes_received"],
    }
