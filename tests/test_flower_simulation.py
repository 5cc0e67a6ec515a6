"""A NoT request through Flower's simulation runtime (``run_simulation``, Ray).

ServerApp in a thread, ClientApps in Ray actors; about 15-30 s, mostly Ray's start-up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip(
    "flwr.simulation", reason="flwr[simulation] is not installed: pip install -c "
    "constraints.txt -e '.[flower]'",
)  # fmt: skip

from fednot.integrations.flower.testing import (  # noqa: E402
    app_defaults,
    engine_reference,
    quiet_environment,
    simulate,
)
from fednot.testing import tiny_config  # noqa: E402
from fednot.types import ForgetRequest  # noqa: E402

pytestmark = pytest.mark.flower


def test_not_request_under_run_simulation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in quiet_environment(tmp_path / "flwr-home").items():
        monkeypatch.setenv(key, value)
    config = tiny_config()
    out = tmp_path / "out"
    defaults = app_defaults(config, out=str(out), **{"forget-requests": "1:client"})

    simulate(defaults, config.data.num_clients)

    result = json.loads((out / "result.json").read_text())
    exp, trained, outcome = engine_reference(config, ForgetRequest(clients=(1,)))
    served = result["requests"][0]
    assert served["request"]["clients"] == [1] and not result["refused"]
    metrics = exp.evaluate(outcome.state, ForgetRequest(clients=(1,)))
    assert served["test_acc"]["after"] == pytest.approx(metrics.test_acc)
    assert served["forget_acc"]["after"] == pytest.approx(metrics.forget_acc)
    assert [r["clients"] for r in result["pretrain"]["rounds"]] == [
        list(r.clients) for r in trained.log.rounds
    ]
    assert [r["clients"] for r in served["recovery"]["rounds"]] == [
        list(r.clients) for r in outcome.log.rounds
    ]
    assert (out / "final.pt").exists()
