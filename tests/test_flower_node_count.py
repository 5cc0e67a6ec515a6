"""`UnlearningStrategy` at any node count: refused, not hung, when too few nodes are left.

flwr's strategies sleep in ``sample_nodes`` until ``min_available_nodes`` (default 2) nodes are
connected. Since flwr 1.32 a simulation has 2 SuperNodes by default, so forgetting one used to
leave recovery rounds waiting forever for a second node ("Waiting for nodes to connect: 1
connected (minimum required: 2)"). On an in-process grid, in seconds; flwr's sleep there is
replaced by an error, so a regression fails at once instead of hanging.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "flwr", reason="flwr is not installed: pip install -c constraints.txt -e '.[flower]'"
)

import torch  # noqa: E402
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp.strategy import (  # noqa: E402
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    Strategy,
)
from torch import nn  # noqa: E402

from fednot.errors import TooFewNodesError  # noqa: E402
from fednot.integrations.flower import UnlearningStrategy  # noqa: E402
from fednot.integrations.flower.node_count import lower_minimums, node_need  # noqa: E402
from fednot.integrations.flower.testing.inprocess import InProcessGrid  # noqa: E402
from fednot.unlearning import NoT  # noqa: E402

pytestmark = pytest.mark.flower

client_app = ClientApp()


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


@client_app.train()
def _train(msg: Message, context: Context) -> Message:
    """The global model back, unchanged: the test is about who gets messages."""
    metrics = MetricRecord({"num-examples": 10})
    arrays = msg.content["arrays"]
    return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)


@client_app.evaluate()
def _evaluate(msg: Message, context: Context) -> Message:
    metrics = MetricRecord({"num-examples": 10, "accuracy": 1.0})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """flwr's wait for nodes fails at once instead of sleeping forever."""
    torch.set_num_threads(1)

    def sleep(seconds: float) -> None:
        raise AssertionError("flwr's sample_nodes is waiting for nodes that will not come")

    monkeypatch.setattr("flwr.serverapp.strategy.strategy_utils.sleep", sleep)


def _trained(nodes: int, strategy: Strategy | None = None) -> tuple[Any, InProcessGrid, Any]:
    grid = InProcessGrid(client_app, [{"partition-id": k} for k in range(nodes)])
    unlearning = UnlearningStrategy(strategy or FedAvg(), method=NoT(), model=_net())
    trained = unlearning.start(grid, ArrayRecord(_net().state_dict()), num_rounds=1)
    return unlearning, grid, trained.arrays


def test_forgetting_one_of_two_nodes_is_refused_with_both_numbers() -> None:
    strategy, grid, arrays = _trained(2)  # flwr's default simulation: 2 SuperNodes
    target = list(grid.get_node_ids())[1]
    sent = len(grid.delivered)

    with pytest.raises(TooFewNodesError) as refused:
        strategy.unlearn(grid, arrays, forget=[target], rounds=2)

    assert (refused.value.left, refused.value.required) == (1, 2)
    message = str(refused.value)
    assert "1 node(s) would be left" in message and "waits for 2" in message
    assert "FedAvg.min_available_nodes = 2" in message
    assert 'num-supernodes=3"' in message and "adapt_minimums=True" in message
    assert not strategy.forgotten and len(grid.delivered) == sent  # nothing changed, none sent


def test_forgetting_every_node_is_refused() -> None:
    strategy, grid, arrays = _trained(2, FedAvg(min_available_nodes=0, min_train_nodes=0))
    with pytest.raises(TooFewNodesError, match="no node would be left to train on"):
        strategy.unlearn(grid, arrays, forget=list(grid.get_node_ids()), rounds=1)


def test_three_nodes_unlearn_and_log_each_step(caplog: pytest.LogCaptureFixture) -> None:
    strategy, grid, arrays = _trained(3)
    target = list(grid.get_node_ids())[0]
    sent = len(grid.delivered)

    with caplog.at_level(logging.INFO, logger="flwr"):
        out = strategy.unlearn(grid, arrays, forget=[target], rounds=2)

    assert out.forgotten == [target] and out.recovery is not None
    assert len(out.recovery.train_metrics_clientapp) == 2
    assert all(m.metadata.dst_node_id != target for m in grid.delivered[sent:])
    assert f"NoT forgets nodes [{target}]: negated 0.weight" in caplog.text
    assert f"Recovery: 2 rounds of FedAvg on the 2 nodes left; nodes [{target}]" in caplog.text


def test_adapt_minimums_is_an_opt_in(caplog: pytest.LogCaptureFixture) -> None:
    fedavg = FedAvg()
    strategy, grid, arrays = _trained(2, fedavg)
    target, other = list(grid.get_node_ids())
    sent = len(grid.delivered)

    with caplog.at_level(logging.INFO, logger="flwr"):
        out = strategy.unlearn(grid, arrays, forget=[target], rounds=1, adapt_minimums=True)

    assert fedavg.min_available_nodes == fedavg.min_train_nodes == fedavg.min_evaluate_nodes == 1
    assert "lowered FedAvg.min_available_nodes 2 -> 1" in caplog.text
    assert {m.metadata.dst_node_id for m in grid.delivered[sent:]} == {other}
    assert out.recovery is not None and len(out.recovery.train_metrics_clientapp) == 1


def test_node_need_reads_phases_fractions_and_wrapped_strategies() -> None:
    assert node_need(FedAvg(), 1) is not None
    assert node_need(FedAvg(min_evaluate_nodes=5), 3).required == 5  # type: ignore[union-attr]
    skipped = FedAvg(fraction_evaluate=0.0, min_evaluate_nodes=5)  # no evaluation: no minimum
    assert node_need(skipped, 3).required == 2  # type: ignore[union-attr]
    wrapped = DifferentialPrivacyServerSideFixedClipping(
        FedAvg(min_available_nodes=4),
        noise_multiplier=0.1,
        clipping_norm=1.0,
        num_sampled_clients=4,
    )
    need = node_need(wrapped, 3)
    assert need is not None and need.required == 4
    assert need.reason == "FedAvg.min_available_nodes = 4"
    assert lower_minimums(wrapped, 3) == ["FedAvg.min_available_nodes 4 -> 3"]
    assert node_need(wrapped, 3).required == 3  # type: ignore[union-attr]
    assert node_need(_Custom(), 1) is None  # nothing fednot can read: no check


class _Custom(Strategy):
    """A strategy that declares no minimum."""

    def configure_train(self, *args: Any) -> list[Message]:  # noqa: D102
        return []

    def aggregate_train(self, *args: Any) -> tuple[None, None]:  # noqa: D102
        return None, None

    def configure_evaluate(self, *args: Any) -> list[Message]:  # noqa: D102
        return []

    def aggregate_evaluate(self, *args: Any) -> None:  # noqa: D102
        return None

    def summary(self) -> None:  # noqa: D102
        return None


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flower_app"


def test_the_example_is_a_flwr_run_app() -> None:
    from flwr.cli.config_utils import load_and_validate

    config, warnings = load_and_validate(EXAMPLE / "pyproject.toml", check_module=True)

    assert not warnings
    app = config["tool"]["flwr"]["app"]
    assert app["components"] == {
        "serverapp": "not_app:server_app",
        "clientapp": "not_app:client_app",
    }
    source = (EXAMPLE / "not_app.py").read_text()
    assert all(f'"{key}"' in source for key in app["config"])  # every key is read
    assert "run_simulation" not in source  # deprecated: the app runs under `flwr run`
