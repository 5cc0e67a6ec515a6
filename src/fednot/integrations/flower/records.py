"""Conversions between fednot's objects and Flower's records, and message sizes.

Pure functions: state dicts to and from `ArrayRecord`, forget requests to and from
`ConfigRecord`, the text form in which a client files its request, and the byte count of a
message's content (the count of flwr's ``message_size_mod``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    ConfigRecordValues,
    Message,
    MetricRecord,
    RecordDict,
)

from fednot.errors import ConfigError, FedNotError
from fednot.federation.local import LocalRecipe
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.negation import negate

ARRAYS = "arrays"  # the record key of the model (FedAvg's default `arrayrecord_key`)
CONFIG = "config"  # the record key of the instructions (FedAvg's default `configrecord_key`)
METRICS = "metrics"  # the record key of a reply's numbers
NUM_EXAMPLES = "num-examples"  # FedAvg's aggregation weight

Entries = dict[str, ConfigRecordValues]
"""The entries of a `ConfigRecord`."""


def to_arrays(state: StateDict) -> ArrayRecord:
    """A state dict as an `ArrayRecord` (keys and order kept, buffers included)."""
    return ArrayRecord({k: v.detach().cpu() for k, v in state.items()})


def to_state(arrays: ArrayRecord) -> StateDict:
    """An `ArrayRecord` as a state dict of fresh tensors (never views of the record)."""
    state: StateDict = arrays.to_torch_state_dict()
    return state


def negate_arrays(arrays: ArrayRecord, targets: Iterable[str]) -> ArrayRecord:
    """NoT's negation (`fednot.unlearning.negation.negate`) applied to an `ArrayRecord`."""
    return to_arrays(negate(to_state(arrays), targets))


def message_bytes(message: Message) -> int:
    """Bytes of a message's records, counted as flwr's ``message_size_mod`` counts them.

    Array payloads count their serialised NumPy bytes (data plus a ~128-byte header per tensor)
    and their keys; config and metric entries count 8 bytes per number plus their keys. Message
    metadata and transport framing are not included.
    """
    if not message.has_content():
        return 0
    return sum(record.count_bytes() for record in message.content.values())


def request_to_config(request: ForgetRequest) -> Entries:
    """The entries that carry ``request`` in a `ConfigRecord` (prefixed ``forget-``)."""
    entries: Entries = {
        "forget-kind": request.kind,
        "forget-clients": list(request.clients),
    }
    if request.classes is not None:
        entries["forget-classes"] = list(request.classes)
    if request.indices is not None:
        entries["forget-indices"] = list(request.indices)
    return entries


def request_from_config(config: ConfigRecord) -> ForgetRequest | None:
    """The request that `request_to_config` wrote into ``config``, or ``None``."""
    if "forget-kind" not in config:
        return None
    classes, indices = config.get("forget-classes"), config.get("forget-indices")
    return ForgetRequest(
        clients=as_ints(config["forget-clients"], "forget-clients"),
        classes=None if classes is None else as_ints(classes, "forget-classes"),
        indices=None if indices is None else as_ints(indices, "forget-indices"),
    )


def recipe_entries(recipe: LocalRecipe) -> dict[str, float | int | str]:
    """The entries that carry a local-training recipe (prefixed ``recipe-``)."""
    if recipe.frozen:
        raise ConfigError(
            f"A recipe with frozen parameters ({sorted(recipe.frozen)}) cannot be sent to a "
            "Flower client; the layer-wise analyses run in the engine only."
        )
    return {
        "recipe-epochs": recipe.epochs,
        "recipe-batch-size": recipe.batch_size,
        "recipe-optimizer": recipe.optimizer,
        "recipe-lr": recipe.lr,
        "recipe-momentum": recipe.momentum,
        "recipe-weight-decay": recipe.weight_decay,
        **({} if recipe.steps is None else {"recipe-steps": recipe.steps}),
    }


def recipe_from(config: ConfigRecord, base: LocalRecipe) -> LocalRecipe:
    """``base`` with the ``recipe-`` entries of ``config`` (`recipe_entries`) applied."""
    floats = {
        "lr": "recipe-lr",
        "momentum": "recipe-momentum",
        "weight_decay": "recipe-weight-decay",
    }
    ints = {"epochs": "recipe-epochs", "batch_size": "recipe-batch-size", "steps": "recipe-steps"}
    changes: dict[str, object] = {
        k: as_float(config[e], e) for k, e in floats.items() if e in config
    }
    changes.update({k: as_int(config[e], e) for k, e in ints.items() if e in config})
    if "recipe-optimizer" in config:
        changes["optimizer"] = str(config["recipe-optimizer"])
    return replace(base, **changes)  # type: ignore[arg-type]


def parse_request(text: str, client_id: int) -> ForgetRequest:
    """A client's own request from its text form.

    ``"client"`` forgets all of the client's data (it leaves the federation);
    ``"classes=0,3"`` forgets its samples of those classes and ``"indices=12,40"`` those samples
    (training-split ids, as in ``partition.json``); in both the client stays and fine-tunes on
    what it keeps.
    """
    kind, _, values = text.strip().partition("=")
    if kind == "client" and not values:
        return ForgetRequest(clients=(client_id,))
    if kind in ("classes", "indices") and values:
        try:
            numbers = tuple(int(v) for v in values.split(",") if v.strip())
        except ValueError as e:
            raise ConfigError(f"Expected integers in the forget request {text!r}.") from e
        return ForgetRequest(clients=(client_id,), **{kind: numbers})
    raise ConfigError(
        f"Expected a forget request 'client', 'classes=<c,...>' or 'indices=<i,...>', got {text!r}."
    )


def arrays_in(content: RecordDict, key: str = ARRAYS) -> ArrayRecord:
    """The `ArrayRecord` ``key`` of a message's content."""
    return content.array_records[key]


def config_in(content: RecordDict, key: str = CONFIG) -> ConfigRecord:
    """The `ConfigRecord` ``key`` of a message's content."""
    return content.config_records[key]


def metrics_in(content: RecordDict) -> MetricRecord:
    """The only `MetricRecord` of a reply."""
    records = content.metric_records
    if len(records) != 1:
        raise FedNotError(f"Expected one MetricRecord in a reply, got {list(records)}.")
    return next(iter(records.values()))


def as_int(value: object, key: str) -> int:
    """``value`` (a record entry named ``key``) as an int."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FedNotError(f"Expected a number for {key!r}, got {value!r}.")
    return int(value)


def as_float(value: object, key: str) -> float:
    """``value`` (a record entry named ``key``) as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FedNotError(f"Expected a number for {key!r}, got {value!r}.")
    return float(value)


def as_ints(value: object, key: str) -> tuple[int, ...]:
    """``value`` (a record entry named ``key``) as a tuple of ints."""
    if not isinstance(value, list):
        raise FedNotError(f"Expected a list of integers for {key!r}, got {value!r}.")
    return tuple(as_int(v, key) for v in value)
