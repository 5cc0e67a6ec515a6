"""A real Flower deployment: a SuperLink and 3 SuperNodes on 127.0.0.1 serve a request.

PGD is the method served, because its request uses every kind of message a deployment carries:
node identification, the request query, a step run whole on the target's node (``target.step``,
carrying the training history the server kept), the recovery's train messages and the
evaluations. Each message starts a fresh ``flwr-clientapp`` process on its SuperNode, so the
test takes about a minute on two cores; it runs in the normal suite (deselect it with ``-m "not
deployment"``). A step on the server (NoT) goes through the same messages: it is checked against
the engine under ``run_simulation`` (`tests/test_flower_simulation.py`) and, for every method,
on the in-process grid (`tests/test_flower_grid.py`); a second deployment for it cost a minute
of the suite's three.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip(
    "flwr", reason="flwr is not installed: pip install -c constraints.txt -e '.[flower]'"
)

from fednot.config import TrainConfig, UnlearnConfig  # noqa: E402
from fednot.configio import to_toml  # noqa: E402
from fednot.integrations.flower.deploy import deploy  # noqa: E402
from fednot.integrations.flower.processes import processes_with  # noqa: E402
from fednot.integrations.flower.testing import engine_reference  # noqa: E402
from fednot.testing import tiny_config  # noqa: E402
from fednot.types import ForgetRequest  # noqa: E402

pytestmark = [pytest.mark.flower, pytest.mark.deployment]


def test_local_deployment_serves_a_request_whose_step_runs_on_the_target(tmp_path: Path) -> None:
    method, options = "pgd", {"epochs": 1, "num_random": 2, "batch_size": 16}
    config = tiny_config(
        train=TrainConfig(rounds=1, batch_size=8, lr=0.05),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=1, methods=(method,)),
        threads=1,
    )  # fmt: skip
    config = replace(config, options={method: options})

    done = deploy(
        to_toml(config), config.data.num_clients, method=method, forget={1: "client"},
        workdir=tmp_path, single_run=True, timeout=240, extra={"data-source": "tiny"},
    )  # fmt: skip

    assert done.runs[0].returncode == 0
    assert f"FEDNOT_DONE method={method} requests=1 refused=0" in done.runs[0].output
    result = done.result
    served = result["requests"][0]
    assert served["request"]["clients"] == [1] and served["excluded"] == [1]
    assert served["notes"]["steps"] > 0  # PGD's step ran on the target's node: its ascent
    assert [r["clients"] for r in served["recovery"]["rounds"]] == [[0, 2]]
    exp, _, outcome = engine_reference(config, ForgetRequest(clients=(1,)), method)
    metrics = exp.evaluate(outcome.state, ForgetRequest(clients=(1,)))  # the engine's numbers
    assert served["test_acc"]["after"] == pytest.approx(metrics.test_acc)
    assert served["forget_acc"]["after"] == pytest.approx(metrics.forget_acc)
    assert result["bytes_sent"]["train"] > 0 and result["bytes_received"]["train"] > 0
    assert processes_with(f"FLWR_HOME={tmp_path / 'flwr-home'}".encode()) == []  # none left
