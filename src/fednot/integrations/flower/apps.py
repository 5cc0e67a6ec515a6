"""Default app instances for ``flwr run``: ``fednot.integrations.flower.apps:server_app``.

The run configuration comes from the app's ``pyproject.toml`` and ``--run-config``
(`fednot.integrations.flower.settings.RUN_CONFIG_DEFAULTS` lists the keys).
"""

from __future__ import annotations

from fednot.integrations.flower.client_app import create_client_app
from fednot.integrations.flower.server_app import create_server_app

server_app = create_server_app()
client_app = create_client_app()
