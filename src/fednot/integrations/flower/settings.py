"""The Flower run configuration of a fednot app, and the federation it describes.

A Flower run carries a flat ``run_config`` of scalars (``[tool.flwr.app.config]`` in the app's
``pyproject.toml``, overridden by ``flwr run --run-config``). fednot reads its own `RunConfig`
from two of those keys, a TOML document (``fednot-config``) and ``key=value`` overrides
(``fednot-set``), so a Flower run and an in-process `fednot.benchmark.experiment.Experiment` start
from the same configuration and seed. `RUN_CONFIG_DEFAULTS` lists every key, with its meaning.

Loading is cheap on purpose: a SuperNode starts a fresh ClientApp process for every message, so
the federation is memoised per process and the decoded data set can be cached on disk
(``cache-dir``).
"""

from __future__ import annotations

import hashlib
import shlex
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from fednot.benchmark.scenarios import build_scenario
from fednot.config import DataConfig, RunConfig
from fednot.configio import apply_overrides, from_dict, to_toml
from fednot.data.federated import Federation
from fednot.data.registry import build_federation, make_partition, read_dataset
from fednot.data.source import DatasetSplits, ImageSet
from fednot.errors import ConfigError, DamagedFileError, FedNotWarning
from fednot.seeding import SeedStreams
from fednot.store.cache import load_verified, save_verified

ConfigValue = bool | int | float | str
Stage = Literal["all", "pretrain", "unlearn"]
DataSource = Literal["config", "tiny"]

RUN_CONFIG_DEFAULTS: dict[str, ConfigValue] = {
    "fednot-config": "",  # a fednot RunConfig as a TOML document ("" = the defaults)
    "fednot-set": "",  # space-separated key=value overrides, e.g. "train.rounds=3"
    "seed": -1,  # the run seed (-1 = the first of the configuration's `seeds`)
    "method": "not",  # the unlearning method applied to each accepted forget request
    "stage": "all",  # all | pretrain (then save `checkpoint`) | unlearn (load `checkpoint`)
    "checkpoint": "",  # a fednot checkpoint on the ServerApp's host
    "out": "",  # a folder on the ServerApp's host for result.json and the final model
    "data-source": "config",  # config (fednot's data registry) | tiny (fednot.data.synthetic)
    "forget-requests": "",  # requests relayed to the clients, e.g. "1:client 2:classes=0,3"
    "node-timeout": 120.0,  # seconds to wait for every client's node to connect
    "round-timeout": 600.0,  # seconds to wait for the replies of one round
    "poll-interval": 0.05,  # seconds between the server's pulls for replies (Flower's: 3)
    "validate": False,  # federated validation after every round (forced by a stop rule)
    "cache-dir": "",  # where ClientApps cache decoded data sets ("" = no cache)
    "ledger": "",  # a deletion ledger on the ServerApp's host, keyed by client id ("" = none)
}
"""Every key of the Flower run configuration and its default."""

_STAGES = ("all", "pretrain", "unlearn")
_SOURCES = ("config", "tiny")


@dataclass(frozen=True)
class FlowerSettings:
    """A Flower run's settings, parsed and checked (see `RUN_CONFIG_DEFAULTS`)."""

    config: RunConfig
    seed: int
    method: str = "not"
    stage: Stage = "all"
    checkpoint: str = ""
    out: str = ""
    data_source: DataSource = "config"
    forget_requests: str = ""
    node_timeout: float = 120.0
    round_timeout: float = 600.0
    poll_interval: float = 0.05
    validate: bool = False
    cache_dir: str = ""
    ledger: str = ""

    @property
    def num_clients(self) -> int:
        """How many clients (and so SuperNodes) the federation has."""
        return self.config.data.num_clients

    def key(self) -> str:
        """A text that determines the federation (for memoisation)."""
        return f"{to_toml(self.config)}|{self.seed}|{self.data_source}|{self.cache_dir}"

    def relayed_request(self, client_id: int) -> str | None:
        """The request that ``forget-requests`` relays to ``client_id``, if any."""
        for item in self.forget_requests.split():
            who, sep, what = item.partition(":")
            if not sep or not who.strip().isdigit() or not what:
                raise ConfigError(
                    f"Expected `forget-requests` entries of the form <client-id>:<request> "
                    f"(e.g. '1:client 2:classes=0,3'), got {item!r}."
                )
            if int(who) == client_id:
                return what
        return None


def parse_settings(
    run_config: Mapping[str, ConfigValue], defaults: Mapping[str, ConfigValue] | None = None
) -> FlowerSettings:
    """Read `FlowerSettings` from a Flower ``run_config`` over ``defaults``.

    ``run_simulation`` passes an empty ``run_config``; ``defaults`` (given to the app factories)
    fill it. Unknown keys are errors.
    """
    values = {**RUN_CONFIG_DEFAULTS, **(defaults or {}), **run_config}
    unknown = sorted(set(values) - set(RUN_CONFIG_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"Unknown Flower run-config keys {unknown}. Known: {', '.join(RUN_CONFIG_DEFAULTS)}."
        )
    config = _run_config(str(values["fednot-config"]), str(values["fednot-set"]))
    seed = int(values["seed"])
    stage, source = str(values["stage"]), str(values["data-source"])
    if stage not in _STAGES:
        raise ConfigError(f"Expected `stage` to be one of {_STAGES}, got {stage!r}.")
    if source not in _SOURCES:
        raise ConfigError(f"Expected `data-source` to be one of {_SOURCES}, got {source!r}.")
    if stage == "unlearn" and not values["checkpoint"]:
        raise ConfigError("stage='unlearn' starts from a checkpoint: set `checkpoint`.")
    return FlowerSettings(
        config=config,
        seed=config.seeds[0] if seed < 0 else seed,
        method=str(values["method"]),
        stage=cast(Stage, stage),
        checkpoint=str(values["checkpoint"]),
        out=str(values["out"]),
        data_source=cast(DataSource, source),
        forget_requests=str(values["forget-requests"]),
        node_timeout=float(values["node-timeout"]),
        round_timeout=float(values["round-timeout"]),
        poll_interval=_positive(values["poll-interval"], "poll-interval"),
        validate=bool(values["validate"]),
        cache_dir=str(values["cache-dir"]),
        ledger=str(values["ledger"]),
    )


def _positive(value: ConfigValue, key: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0:
        raise ConfigError(f"Expected `{key}` to be a positive number of seconds, got {value!r}.")
    return number


def _run_config(toml_text: str, overrides: str) -> RunConfig:
    try:
        data = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"`fednot-config` is not valid TOML: {e}.") from e
    return from_dict(RunConfig, apply_overrides(data, shlex.split(overrides, posix=False)))


_FEDERATIONS: dict[str, Federation] = {}
_MEMO_SIZE = 4


def load_federation(settings: FlowerSettings) -> Federation:
    """The federation of the run, exactly as `fednot.benchmark.experiment.Experiment` builds it.

    The scenario is applied (the backdoor scenario poisons the malicious client's samples), so
    every client trains on what it trains on in the in-process engine. Memoised per process.
    """
    key = settings.key()
    if key not in _FEDERATIONS:
        if len(_FEDERATIONS) >= _MEMO_SIZE:
            _FEDERATIONS.clear()
        _FEDERATIONS[key] = _build_federation(settings)
    return _FEDERATIONS[key]


def _build_federation(settings: FlowerSettings) -> Federation:
    streams = SeedStreams(settings.seed)
    return build_scenario(settings.config, base_federation(settings), streams).federation


def base_federation(settings: FlowerSettings) -> Federation:
    """The run's federation before its scenario (what `Experiment` takes as ``federation``)."""
    config = settings.config
    if settings.data_source == "tiny":
        from fednot.data.synthetic import tiny_federation

        return tiny_federation(config.data.num_clients, server_size=config.data.server_samples)
    splits = read_splits(config.data, settings.cache_dir)
    partition = make_partition(config.data, splits, SeedStreams(settings.seed))
    return build_federation(config.data, splits, partition)


def read_splits(data: DataConfig, cache_dir: str) -> DatasetSplits:
    """`fednot.data.registry.read_dataset`, through an optional on-disk cache of the pixels.

    The cache files are sealed as the engine's model cache is (`fednot.store.cache`): a damaged
    or altered one is reported, then rebuilt.
    """
    if not cache_dir:
        return read_dataset(data.dataset, data.root, data.image_size)
    tag = hashlib.sha256(f"{data.dataset}|{data.root}|{data.image_size}".encode()).hexdigest()
    path = Path(cache_dir).expanduser() / f"{data.dataset}-{tag[:16]}.pt"
    if path.exists():
        try:
            return _splits_from(load_verified(path))
        except DamagedFileError as e:  # as the model cache does: say so, then rebuild it
            warnings.warn(f"{e}; it is read again from the data set.", FedNotWarning, stacklevel=2)
    splits = read_dataset(data.dataset, data.root, data.image_size)
    save_verified(_splits_to(splits), path)
    return splits


def _splits_to(splits: DatasetSplits) -> dict[str, object]:
    def part(s: ImageSet | None) -> dict[str, object] | None:
        return None if s is None else {"images": s.images, "labels": s.labels, "classes": s.classes}

    return {"name": splits.name, "train": part(splits.train), "test": part(splits.test)}


def _splits_from(payload: dict[str, object]) -> DatasetSplits:
    def part(p: object) -> ImageSet | None:
        if p is None:
            return None
        assert isinstance(p, dict)
        return ImageSet(p["images"], p["labels"], tuple(p["classes"]))

    train = part(payload["train"])
    assert train is not None
    return DatasetSplits(str(payload["name"]), train, part(payload["test"]))
