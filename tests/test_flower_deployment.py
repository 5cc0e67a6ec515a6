"""A real Flower deployment: a SuperLink and 3 SuperNodes on 127.0.0.1 serve a NoT request.

Every message starts a fresh ``flwr-clientapp`` process on its SuperNode, so this takes about a
minute on two cores (longer on a loaded machine). It runs in the normal suite; deselect it with
``-m "not deployment"``.
"""

from __future__ import annotations

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


def test_local_deployment_serves_a_not_request(tmp_path: Path) -> None:
    config = tiny_config(
        train=TrainConfig(rounds=1, batch_size=8, lr=0.05),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=1), threads=1,
    )  # fmt: skip

    done = deploy(
        to_toml(config), config.data.num_clients, forget={1: "client"}, workdir=tmp_path,
        single_run=True, timeout=240, extra={"data-source": "tiny"},
    )  # fmt: skip

    assert done.runs[0].returncode == 0
    assert "FEDNOT_DONE method=not requests=1 refused=0" in done.runs[0].output
    result = done.result
    served = result["requests"][0]
    assert served["request"]["clients"] == [1] and served["excluded"] == [1]
    assert served["notes"]["negated_layers"] == ["fc1"]
    assert [r["clients"] for r in served["recovery"]["rounds"]] == [[0, 2]]
    assert served["test_acc"]["after_step"] < served["test_acc"]["before"]
    exp, _, outcome = engine_reference(config, ForgetRequest(clients=(1,)))
    metrics = exp.evaluate(outcome.state, ForgetRequest(clients=(1,)))  # the engine's numbers
    assert served["test_acc"]["after"] == pytest.approx(metrics.test_acc)
    assert served["forget_acc"]["after"] == pytest.approx(metrics.forget_acc)
    assert result["bytes_sent"]["train"] > 0 and result["bytes_received"]["train"] > 0
    assert processes_with(f"FLWR_HOME={tmp_path / 'flwr-home'}".encode()) == []  # none left
