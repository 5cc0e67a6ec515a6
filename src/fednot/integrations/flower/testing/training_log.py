"""A ClientApp mod that logs every training message a node handles, for the ledger's tests.

`training_log_mod` appends one JSON line per ``train`` message, before the app's handler runs:
the node's identity (its ``partition-id``), the server round, and the UTC time. The log is the
file the environment variable ``FEDNOT_TRAINING_LOG`` names (Ray's workers inherit the test's
environment, and the app's run config stays as the app declares it); unset, nothing is logged.
Tests read
it with `read_training_log` to check, from the clients' side, that no forgotten client trained
after its request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from flwr.app import Context, Message

LOG_VARIABLE = "FEDNOT_TRAINING_LOG"


def training_log_mod(
    msg: Message, context: Context, call_next: Callable[[Message, Context], Message]
) -> Message:
    """Log a ``train`` message to the file ``$FEDNOT_TRAINING_LOG``, then handle it."""
    path = os.environ.get(LOG_VARIABLE)
    if path and msg.metadata.message_type.split(".")[0] == "train":
        config = msg.content.config_records.get("config")
        entry = {
            "identity": str(context.node_config.get("partition-id")),
            "node": context.node_id,
            "round": config.get("server-round", -1) if config else -1,
            "time": datetime.now(UTC).isoformat(timespec="microseconds"),
        }
        with open(path, "a") as f:  # one short write per line: lines do not interleave
            f.write(json.dumps(entry) + "\n")
    return call_next(msg, context)


def read_training_log(path: Path) -> list[dict[str, object]]:
    """The entries `training_log_mod` wrote to ``path``, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]
