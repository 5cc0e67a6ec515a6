"""``fednot ledger show FILE``: the receipts of a deletion ledger, readably.

The ledger is `fednot.store.ledger`'s file; reading it needs no flwr. A damaged or missing file
is reported as an error (exit status 2), never shown as an empty ledger.
"""

from __future__ import annotations

import argparse
from typing import Any

from fednot.store.ledger import DeletionLedger, describe_ledger


def register_cli(subparsers: Any) -> None:
    """Add ``fednot ledger show`` to ``subparsers`` (an argparse sub-parsers action)."""
    ledger = subparsers.add_parser("ledger", help="read a deletion ledger (Flower's unlearning)")
    actions = ledger.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print each request's receipt: who was forgotten, when, how, and the model digests",
    )
    show.add_argument("file", help="the ledger file (UnlearningStrategy(..., ledger=...))")
    show.set_defaults(handler=show_ledger)


def show_ledger(args: argparse.Namespace) -> int:
    """Handler of ``fednot ledger show``."""
    ledger = DeletionLedger(args.file, create=False)
    print(f"Deletion ledger {ledger.path}: ", end="")
    print(describe_ledger(ledger.receipts), end="")
    return 0
