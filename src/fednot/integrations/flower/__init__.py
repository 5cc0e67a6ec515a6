"""Run NoT and the baselines on a Flower deployment (``pip install 'fednot[flower]'``).

The in-process engine with Flower as its back-end, on flwr's Message API:

- `create_server_app` / `create_client_app`: the fednot ServerApp and ClientApp
  (`fednot.integrations.flower.apps` holds default instances for ``flwr run``);
- `UnlearningStrategy`: NoT, FT or Retrain for any Flower app, around its own Strategy;
  `DeletionLedger` keeps its forgotten clients across restarts, keyed by `query_identity` (the
  app's own client identity) or `public_key_identity` (the SuperNode's key, with node auth);
- `identify_clients`, `collect_requests`: the QUERY rounds that map node ids to fednot client ids
  and gather the clients' own forget requests (a request for another client's data is refused);
- `negate_arrays`: NoT's negation on an `ArrayRecord`; `to_arrays`, `to_state`: conversions
  between states and Flower's records.

Apart from the adapter: `fednot.integrations.flower.local` (a SuperLink and N SuperNodes on this
machine, ``fednot flower up``) and `fednot.integrations.flower.testing` (a Grid that runs
ClientApps in this process, and checks of a Flower run against the engine).

Importing this package needs flwr; the rest of fednot never imports it.
"""

from __future__ import annotations

try:
    import flwr  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "fednot.integrations.flower needs Flower (flwr), which is not installed: "
        "pip install 'fednot[flower]' (with the project's pins: pip install -c constraints.txt "
        "-e '.[flower]')."
    ) from e

from fednot.integrations.flower.client_app import comm_meter_mod, create_client_app
from fednot.integrations.flower.identity import (
    ClientMap,
    collect_requests,
    identify_clients,
    screen_request,
)
from fednot.integrations.flower.ledger import public_key_identity, query_identity
from fednot.integrations.flower.records import negate_arrays, to_arrays, to_state
from fednot.integrations.flower.result import FlowerResult, Readings, ServedRequest
from fednot.integrations.flower.server_app import create_server_app, run_fednot
from fednot.integrations.flower.settings import RUN_CONFIG_DEFAULTS, FlowerSettings, parse_settings
from fednot.integrations.flower.unlearning_strategy import UnlearningResult, UnlearningStrategy
from fednot.store.ledger import DeletionLedger, Receipt

__all__ = [
    "RUN_CONFIG_DEFAULTS",
    "ClientMap",
    "DeletionLedger",
    "FlowerResult",
    "FlowerSettings",
    "Readings",
    "Receipt",
    "ServedRequest",
    "UnlearningResult",
    "UnlearningStrategy",
    "collect_requests",
    "comm_meter_mod",
    "create_client_app",
    "create_server_app",
    "identify_clients",
    "negate_arrays",
    "parse_settings",
    "public_key_identity",
    "query_identity",
    "run_fednot",
    "screen_request",
    "to_arrays",
    "to_state",
]
