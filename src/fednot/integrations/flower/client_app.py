"""The fednot ClientApp: a data owner's side of a Flower run.

Message types it answers (flwr Message API):

- ``query.identify``: its fednot client id (from ``node_config["partition-id"]``);
- ``query.request``: its own forget request, if it has one (`runtime.request_text`);
- ``train``: one local training run with the engine's `fednot.federation.local.local_train`, on
  the engine's seed stream the message names; with a ``teacher`` model sent along, on its
  pseudo-labels (MoDE's target);
- ``train.unlearn``: a method's own step run on the target's own data (`target.target_step`);
- ``evaluate``: correct predictions on one of its data parts.

Every reply is measured by flwr's ``message_size_mod`` (which logs the sizes) and by
`comm_meter_mod`, which reports the same counts back to the server in the reply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import message_size_mod
from flwr.clientapp.typing import ClientAppCallable

from fednot.config import TrainConfig
from fednot.errors import FedNotError
from fednot.federation.local import LocalRecipe, LocalUpdate, local_train, predict
from fednot.integrations.flower.records import (
    ARRAYS,
    CONFIG,
    METRICS,
    NUM_EXAMPLES,
    Entries,
    arrays_in,
    as_float,
    config_in,
    message_bytes,
    recipe_from,
    request_from_config,
    request_to_config,
    to_arrays,
    to_state,
)
from fednot.integrations.flower.runtime import ClientRuntime, client_runtime
from fednot.integrations.flower.settings import ConfigValue, parse_settings
from fednot.integrations.flower.target import target_step
from fednot.types import StateDict

BYTES_IN, BYTES_OUT = "comm-bytes-in", "comm-bytes-out"
_METER_BYTES = 2 * 8 + len(BYTES_IN) + len(BYTES_OUT)  # the two entries the meter adds


def comm_meter_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Report the sizes of the message received and of the reply sent, in the reply.

    Counts as flwr's ``message_size_mod`` does (`records.message_bytes`); the reply's count
    includes the two entries this mod adds. They go into the reply's only `MetricRecord` (a
    new one when it has none), so FedAvg's reply checks still pass.
    """
    received = message_bytes(msg)
    reply = call_next(msg, context)
    if not reply.has_content():
        return reply
    records = reply.content.metric_records
    metrics = next(iter(records.values())) if len(records) == 1 else None
    sent = message_bytes(reply) + _METER_BYTES
    if metrics is None:
        metrics = MetricRecord()
        reply.content["comm"] = metrics
        sent += metrics.count_bytes()
    metrics[BYTES_IN], metrics[BYTES_OUT] = received, sent
    return reply


def create_client_app(defaults: Mapping[str, ConfigValue] | None = None) -> ClientApp:
    """A fednot ClientApp; ``defaults`` fill the run configuration (empty under simulation)."""
    app = ClientApp(mods=[message_size_mod, comm_meter_mod])

    def runtime(context: Context) -> ClientRuntime:
        settings = parse_settings(context.run_config, defaults)
        return client_runtime(settings, context.node_config)

    @app.query("identify")
    def identify(msg: Message, context: Context) -> Message:
        return _reply(msg, config={"client-id": runtime(context).client_id})

    @app.query("request")
    def request(msg: Message, context: Context) -> Message:
        rt = runtime(context)
        answer: Entries = {"client-id": rt.client_id}
        own = rt.own_request(context.node_config)
        if own is not None:
            answer.update(request_to_config(own))
        return _reply(msg, config=answer)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return _train(runtime(context), msg)

    @app.train("unlearn")
    def unlearn(msg: Message, context: Context) -> Message:
        rt, content = runtime(context), msg.content
        config, last = config_in(content), content.array_records.get("last-local")
        outcome = target_step(
            rt,
            str(config["method"]),
            request_from_config(config),
            to_state(arrays_in(content)),
            None if last is None else to_state(last),
            as_float(config.get("last-share", 0.0), "last-share"),
        )
        metrics = {
            NUM_EXAMPLES: outcome.num_samples,
            "flops": outcome.costs.flops,
            "method-comm-bytes": outcome.costs.comm_bytes,
        }
        notes: Entries = {"notes": json.dumps(outcome.notes, default=str)}
        return _reply(msg, arrays=outcome.state, metrics=metrics, config=notes)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return _evaluate(runtime(context), msg)

    return app


def _train(rt: ClientRuntime, msg: Message) -> Message:
    """One local training run from the message's global model (`local_train`)."""
    config = config_in(msg.content)
    data = rt.data(str(config.get("data", "train")), request_from_config(config))
    if "stream" not in config:
        raise FedNotError("A train message must name its seed stream (`stream`).")
    generator = rt.streams.torch(*_stream(config))
    teacher = None
    if "teacher" in msg.content.array_records:  # its predictions replace the labels (MoDE)
        teacher = rt.new_model()
        teacher.load_state_dict(to_state(arrays_in(msg.content, "teacher")))
    update = local_train(
        rt.model,
        to_state(arrays_in(msg.content)),
        data,
        rt.federation.preprocess,
        _recipe(rt.settings.config.train, config),
        generator,
        flops=rt.flops,
        device=rt.device,
        teacher=teacher,
    )
    return _reply(msg, arrays=update.state, metrics=_train_metrics(update))


def _evaluate(rt: ClientRuntime, msg: Message) -> Message:
    """Correct predictions and summed loss of the message's model on one data part."""
    config = config_in(msg.content)
    data = rt.data(str(config.get("data", "val")), request_from_config(config))
    rt.model.load_state_dict(to_state(arrays_in(msg.content)))
    losses, correct = predict(
        rt.model,
        data,
        rt.federation.preprocess,
        batch_size=rt.settings.config.eval.batch_size,
        device=rt.device,
    )
    n = len(correct)
    metrics = {
        NUM_EXAMPLES: n,
        "correct": int(correct.sum()),
        "loss-sum": float(losses.sum()),
        "accuracy": float(correct.double().mean() * 100) if n else float("nan"),
    }
    return _reply(msg, metrics=metrics)


def _stream(config: ConfigRecord) -> list[str]:
    """The engine's stream key a train message names (e.g. ``client recovery 3 4``)."""
    return [str(part) for part in config["stream"]]  # type: ignore[union-attr]


def _recipe(train: TrainConfig, config: ConfigRecord) -> LocalRecipe:
    """The run's recipe with the message's overrides (``recipe-lr``, ``recipe-epochs``, ...)."""
    return recipe_from(config, LocalRecipe.from_config(train))


def _train_metrics(update: LocalUpdate) -> dict[str, int | float]:
    return {NUM_EXAMPLES: update.num_samples, "train-loss": update.loss, "flops": update.flops}


def _reply(
    msg: Message,
    *,
    arrays: StateDict | None = None,
    metrics: Mapping[str, int | float] | None = None,
    config: Entries | None = None,
) -> Message:
    """The reply to ``msg`` with a model, numbers and/or config entries."""
    content = RecordDict()
    if arrays is not None:
        content[ARRAYS] = to_arrays(arrays)
    if metrics is not None:
        content[METRICS] = MetricRecord(dict(metrics))
    if config is not None:
        content[CONFIG] = ConfigRecord(config)
    return Message(content, reply_to=msg)
