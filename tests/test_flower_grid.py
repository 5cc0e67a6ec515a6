"""The fednot Flower apps on an in-process Grid: the flow, its numbers, refusals, bytes.

No Ray, processes or sockets: `InProcessGrid` hands each message to the real ClientApp, its
content (and the reply's) through Flower's wire format. These are the tests to run first when
the flwr pin moves.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip(
    "flwr", reason="flwr is not installed: pip install -c constraints.txt -e '.[flower]'"
)

import numpy as np  # noqa: E402
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict  # noqa: E402

from fednot.config import TrainConfig, UnlearnConfig  # noqa: E402
from fednot.errors import ConfigError  # noqa: E402
from fednot.federation.costs import state_bytes  # noqa: E402
from fednot.integrations.flower import (  # noqa: E402
    create_client_app,
    parse_settings,
    run_fednot,
)
from fednot.integrations.flower.records import message_bytes, request_to_config  # noqa: E402
from fednot.integrations.flower.result import FlowerResult  # noqa: E402
from fednot.integrations.flower.testing.checks import (  # noqa: E402
    app_defaults,
    engine_reference,
    node_configs,
    same_state,
)
from fednot.integrations.flower.testing.inprocess import InProcessGrid  # noqa: E402
from fednot.testing import tiny_config  # noqa: E402
from fednot.types import ForgetRequest, StateDict  # noqa: E402
from fednot.unlearning.base import Unlearner, UnlearnResult  # noqa: E402
from fednot.unlearning.context import UnlearnContext  # noqa: E402

pytestmark = pytest.mark.flower


def _run(
    config: Any, *, nodes: Any = None, app: Any = None, **extra: Any
) -> tuple[FlowerResult, InProcessGrid]:
    defaults = app_defaults(config, **extra)
    client_app = app or create_client_app(defaults)
    grid = InProcessGrid(client_app, nodes or node_configs(config.data.num_clients), defaults)
    return run_fednot(grid, parse_settings({}, defaults)), grid


def test_not_request_end_to_end() -> None:
    result, _ = _run(tiny_config(), **{"forget-requests": "1:client"})

    assert len(result.requests) == 1 and not result.refused
    served = result.requests[0]
    assert served.request.clients == (1,) and served.excluded == (1,)
    assert served.outcome.notes["negated_layers"] == ["fc1"]  # NoT's default: the first layer
    assert served.test_acc.after_step < served.test_acc.before  # negation forgets...
    assert served.test_acc.after > served.test_acc.after_step  # ...and recovery recovers
    assert all(1 not in r.clients for r in served.outcome.log.rounds)  # the target got no model


@pytest.mark.parametrize(
    ("request_text", "forget", "sections"),
    [
        ("1:client", ForgetRequest(clients=(1,)), {}),
        ("2:classes=0", ForgetRequest(clients=(2,), classes=(0,)), {}),
        ("0:client", ForgetRequest(clients=(0,)), {"participation": 0.5}),
    ],
    ids=["client-wise", "class-wise", "sampled-participants"],
)
def test_flower_equals_the_in_process_engine(
    request_text: str, forget: ForgetRequest, sections: dict[str, Any]
) -> None:
    config = tiny_config(
        train=TrainConfig(rounds=2, batch_size=8, lr=0.05, **sections),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=3),
    )
    exp, trained, outcome = engine_reference(config, forget)
    result, _ = _run(config, **{"forget-requests": request_text})

    served = result.requests[0]
    assert [r.clients for r in result.pretrain.rounds] == [r.clients for r in trained.log.rounds]
    assert [r.clients for r in served.outcome.log.rounds] == [r.clients for r in outcome.log.rounds]
    assert same_state(result.state, outcome.state)  # bit-identical, hence equal accuracies
    metrics = exp.evaluate(outcome.state, forget)  # the engine's own evaluation
    assert served.test_acc.after == pytest.approx(metrics.test_acc)
    assert served.forget_acc.after == pytest.approx(metrics.forget_acc)
    assert [r.comm_bytes for r in served.outcome.log.rounds] == [
        r.comm_bytes for r in outcome.log.rounds
    ]


def test_class_wise_target_fine_tunes_on_retained_data_only() -> None:
    result, grid = _run(tiny_config(), **{"forget-requests": "2:classes=0"})

    served = result.requests[0]
    assert served.excluded == () and all(r.clients == (0, 1, 2) for r in served.outcome.log.rounds)
    node = result.clients[2]
    recovery = [
        m
        for m in grid.delivered
        if m.metadata.dst_node_id == node
        and m.metadata.message_type == "train"
        and list(m.content["config"]["stream"])[:2] == ["client", "recovery"]
    ]
    assert recovery and all(m.content["config"]["data"] == "retained" for m in recovery)
    assert all(m.content["config"]["forget-classes"] == [0] for m in recovery)


def _rogue(honest: Any, liar: int, victim: int) -> Any:
    """A ClientApp whose node ``liar`` files a request for client ``victim``'s data."""

    def app(message: Message, context: Context) -> Message:
        if message.metadata.message_type == "query.request" and (
            context.node_config["partition-id"] == liar
        ):
            entries = {"client-id": liar, **request_to_config(ForgetRequest(clients=(victim,)))}
            return Message(RecordDict({"config": ConfigRecord(entries)}), reply_to=message)
        return honest(message, context)

    return app


def test_a_request_naming_another_client_is_refused() -> None:
    config = tiny_config()
    honest = create_client_app(app_defaults(config, **{"forget-requests": "0:client"}))
    result, _ = _run(
        config, app=_rogue(honest, liar=1, victim=2), **{"forget-requests": "0:client"}
    )

    assert [r.client for r in result.refused] == [1]
    assert "may only ask for its own data" in result.refused[0].reason
    assert result.refused[0].request["clients"] == [2]
    assert [o.request.clients for o in result.requests] == [(0,)]  # client 0's own request
    assert all(2 in r.clients for r in result.requests[0].outcome.log.rounds)  # 2 stays


def test_a_refused_request_alone_leaves_the_model_as_trained() -> None:
    config = tiny_config()
    honest = create_client_app(app_defaults(config))
    result, _ = _run(config, app=_rogue(honest, liar=2, victim=0))

    assert not result.requests and len(result.refused) == 1
    assert result.refused[0].client == 2


def test_a_request_from_the_node_config_is_the_clients_own() -> None:
    nodes = node_configs(3, {1: {"forget": "client"}})
    result, _ = _run(tiny_config(), nodes=nodes)

    assert [o.request.clients for o in result.requests] == [(1,)]


def test_bytes_agree_with_flwr_size_mod_and_with_fednots_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="flwr"):  # flwr's logger propagates to caplog
        result, grid = _run(tiny_config(), **{"forget-requests": "1:client"})

    logged = [
        int(n) for n in re.findall(r"(?:Incoming|Outgoing) message size: (\d+) bytes", caplog.text)
    ]
    assert sum(logged) == sum(result.bytes_sent.values()) + sum(result.bytes_received.values())
    state = result.state
    for record in [*result.pretrain.rounds, *result.requests[0].outcome.log.rounds]:
        extra = record.extra
        assert extra["flower_bytes_down"] == extra["comm_bytes_in"]  # server's count = client's
        assert extra["flower_bytes_up"] == extra["comm_bytes_out"]
        fednot_bytes = 2 * state_bytes(state) * len(record.clients)
        assert record.comm_bytes == fednot_bytes
        flower_bytes = extra["flower_bytes_down"] + extra["flower_bytes_up"]
        assert fednot_bytes < flower_bytes < 1.25 * fednot_bytes  # npy headers, keys, config
    trains = [m for m in grid.delivered if m.metadata.message_type == "train"]
    assert sum(message_bytes(m) for m in trains) == result.bytes_sent["train"]


def test_pretrain_and_unlearn_as_two_runs_through_a_checkpoint(tmp_path: Any) -> None:
    config = tiny_config()
    checkpoint = str(tmp_path / "pretrained.pt")
    both, _ = _run(config, **{"forget-requests": "1:client"})
    _run(config, stage="pretrain", checkpoint=checkpoint)
    second, _ = _run(
        config, stage="unlearn", checkpoint=checkpoint, **{"forget-requests": "1:client"}
    )

    assert not second.pretrain.rounds and "checkpoint" in second.pretrain.stop_reason
    assert same_state(second.state, both.state)


def test_missing_nodes_are_reported_with_the_fix() -> None:
    config = tiny_config()
    defaults = app_defaults(config, **{"node-timeout": 0.1})
    grid = InProcessGrid(create_client_app(defaults), node_configs(3)[:2], defaults)

    with pytest.raises(Exception, match="Only 2 of 3 SuperNodes connected"):
        run_fednot(grid, parse_settings({}, defaults))


def test_two_nodes_claiming_one_client_id_stop_the_run() -> None:
    config = tiny_config()
    nodes = [{"partition-id": 0}, {"partition-id": 0}, {"partition-id": 2}]

    with pytest.raises(Exception, match="claimed by several nodes"):
        _run(config, nodes=nodes)


@pytest.mark.parametrize(
    ("method", "options", "request_text", "forget"),
    [
        (
            "fcu",
            {"iterations": 20, "fusion_interval": 10, "batch_size": 16},
            "1:client",
            ForgetRequest(clients=(1,)),
        ),
        (
            "pgd",
            {"epochs": 2, "num_random": 2, "batch_size": 16},
            "1:client",
            ForgetRequest(clients=(1,)),
        ),
        ("puf", {"variant": "special"}, "1:client", ForgetRequest(clients=(1,))),
        ("puf", {"variant": "regular"}, "2:classes=0", ForgetRequest(clients=(2,), classes=(0,))),
        ("mode", {"rounds": 2, "degradation_rounds": 1}, "1:client", ForgetRequest(clients=(1,))),
        ("ft", {}, "2:classes=1", ForgetRequest(clients=(2,), classes=(1,))),
        ("retrain", {}, "1:client", ForgetRequest(clients=(1,))),
        ("federaser", {"delta_t": 1}, "1:client", ForgetRequest(clients=(1,))),
        ("fukd", {"epochs": 1}, "1:client", ForgetRequest(clients=(1,))),
        ("negsub", {}, "1:client", ForgetRequest(clients=(1,))),
        ("not_wb", {}, "2:classes=0", ForgetRequest(clients=(2,), classes=(0,))),
    ],
    ids=[
        "fcu",
        "pgd",
        "puf-special",
        "puf-regular-class-wise",
        "mode",
        "ft-class-wise",
        "retrain",
        "federaser",
        "fukd",
        "negsub",
        "not_wb-class-wise",
    ],
)
def test_every_method_on_flower_equals_the_engine(
    method: str, options: dict[str, Any], request_text: str, forget: ForgetRequest
) -> None:
    """Methods are written once: on Flower, through the same engine, bit for bit."""
    base = tiny_config()
    config = replace(
        base,
        unlearn=replace(base.unlearn, methods=(method,), recovery_rounds=1),
        options={method: options} if options else {},
        data=replace(base.data, server_samples=16 if method == "fukd" else 0),
    )
    _, _, outcome = engine_reference(config, forget, method)
    result, _ = _run(config, method=method, **{"forget-requests": request_text})

    assert len(result.requests) == 1
    assert same_state(result.state, outcome.state)


class OneRound(Unlearner):
    """A method the Flower integration has never heard of: its step is one more FedAvg round of
    the retained clients at a tenth of the learning rate, asked of the context."""

    name = "oneround"

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        recipe = replace(ctx.recipe, lr=ctx.recipe.lr / 10)
        return UnlearnResult(ctx.fedavg_round(state, "extra", recipe=recipe))


def test_a_new_method_runs_on_flower_with_no_flower_code() -> None:
    """Adding a method touches its file, its registration and its test: nothing of Flower's."""
    name = f"{__name__}:OneRound"
    base = tiny_config()
    config = replace(base, unlearn=replace(base.unlearn, methods=(name,), recovery_rounds=1))
    _, _, outcome = engine_reference(config, ForgetRequest(clients=(1,)), name)
    result, grid = _run(config, method=name, **{"forget-requests": "1:client"})

    assert same_state(result.state, outcome.state)
    phase = "unlearn/oneround/extra"  # the round's stream: ("client", phase, 1, client)
    extra = [m for m in grid.delivered if phase in list(m.content["config"].get("stream", []))]
    assert len(extra) == 2  # the step's round went to the two retained clients as messages


def test_a_method_flower_cannot_run_is_refused_before_training() -> None:
    base = tiny_config()
    config = replace(base, unlearn=replace(base.unlearn, methods=("ga",)))

    with pytest.raises(ConfigError, match="does not apply to the client scenario"):
        _run(config, method="ga")


def test_the_oracle_stop_rule_is_refused_before_training() -> None:
    base = tiny_config()
    config = replace(base, unlearn=replace(base.unlearn, target_val_acc="retrain"))

    with pytest.raises(ConfigError, match='target_val_acc = "retrain"'):
        _run(config)


def test_the_original_stop_rule_runs_on_flower_as_in_the_engine() -> None:
    base = tiny_config()
    unlearn = replace(base.unlearn, target_val_acc="original", target_margin=50.0)
    config = replace(base, unlearn=replace(unlearn, recovery_rounds=3))
    _, _, outcome = engine_reference(config, ForgetRequest(clients=(1,)))
    result, _ = _run(config, **{"forget-requests": "1:client"})

    served = result.requests[0]
    assert served.outcome.log.stop_reason == outcome.log.stop_reason
    assert len(served.outcome.log.rounds) == len(outcome.log.rounds) < 3  # stopped early
    assert same_state(result.state, outcome.state)


def test_the_in_process_grid_delivers_what_the_wire_format_carries() -> None:
    sent = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(np.array([1e-38, -0.0, np.pi], dtype=np.float32))}),
            "config": ConfigRecord({"stream": ["client", "recovery", "3"], "lr": 0.1, "steps": 7}),
        }
    )
    seen: list[RecordDict] = []

    def client_app(message: Message, context: Context) -> Message:
        seen.append(message.content)
        return Message(message.content, reply_to=message)

    grid = InProcessGrid(client_app, [{"partition-id": 0}])
    (node,) = grid.get_node_ids()
    (reply,) = grid.send_and_receive([Message(sent, node, "train")])

    for got in (seen[0], reply.content):  # the node's copy, and the server's copy of the reply
        assert got is not sent and got["arrays"] is not sent["arrays"]
        assert got["arrays"]["w"].numpy().tobytes() == sent["arrays"]["w"].numpy().tobytes()
        assert dict(got["config"]) == dict(sent["config"])


def test_the_clientapps_pixel_cache_is_sealed_and_rebuilt_when_damaged(tmp_path: Path) -> None:
    from fednot.config import DataConfig
    from fednot.errors import FedNotWarning
    from fednot.integrations.flower.settings import read_splits

    data = DataConfig()  # the embedded MNIST-5k
    first = read_splits(data, str(tmp_path))
    (path,) = tmp_path.glob("mnist5k-*.pt")
    again = read_splits(data, str(tmp_path))  # from the cache
    assert torch.equal(again.train.images, first.train.images)
    path.write_bytes(path.read_bytes()[:-64] + bytes(64))  # flipped bytes at the end
    with pytest.warns(FedNotWarning, match="read again from the data set"):
        rebuilt = read_splits(data, str(tmp_path))
    assert torch.equal(rebuilt.train.labels, first.train.labels)
    assert torch.equal(read_splits(data, str(tmp_path)).train.images, first.train.images)


def test_a_client_that_left_never_trains_in_a_later_requests_recovery() -> None:
    """Two requests served one after another: client 1 leaves, then client 2 forgets a class."""
    result, grid = _run(tiny_config(num_clients=4), **{"forget-requests": "1:client 2:classes=0"})

    first, second = result.requests
    assert first.request.clients == (1,) and second.request.classes == (0,)
    assert second.excluded == (1,)  # the client that left is still out
    assert second.outcome.log.rounds and all(1 not in r.clients for r in second.outcome.log.rounds)
    trained = [
        list(m.content["config"]["stream"])[1]
        for m in grid.delivered
        if m.metadata.dst_node_id == result.clients[1] and m.metadata.message_type == "train"
    ]
    assert trained and set(trained) == {"pretrain"}  # it trained before it left, never after
