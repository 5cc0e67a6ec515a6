"""Requests through Flower's simulation runtime (``run_simulation``, Ray): NoT, whose step runs
on the server, and PGD, whose step runs on the target's node with its history.

ServerApp in a thread, ClientApps in Ray actors; about 15-30 s, mostly Ray's start-up.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

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


@pytest.mark.parametrize(
    ("method", "options"),
    [("not", {}), ("pgd", {"epochs": 1, "num_random": 2, "batch_size": 16})],
    ids=["not-on-the-server", "pgd-on-the-target"],
)
def test_a_request_under_run_simulation(
    method: str, options: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in quiet_environment(tmp_path / "flwr-home").items():
        monkeypatch.setenv(key, value)
    base = tiny_config()
    unlearn = replace(base.unlearn, methods=(method,))
    config = replace(base, unlearn=unlearn, options={method: options} if options else {})
    out = tmp_path / "out"
    defaults = app_defaults(config, out=str(out), method=method, **{"forget-requests": "1:client"})

    simulate(defaults, config.data.num_clients)

    result = json.loads((out / "result.json").read_text())
    exp, trained, outcome = engine_reference(config, ForgetRequest(clients=(1,)), method)
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
