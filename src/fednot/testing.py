"""Helpers for testing fednot and methods built on it.

Tiny synthetic federations, every federated method configured for them (`every_method_config`),
and a tripwire that proves a method never reads the forget data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from unittest import mock

import torch

from fednot.benchmark.experiment import Experiment
from fednot.benchmark.results import Record
from fednot.benchmark.scenarios import CentralizedScenario
from fednot.config import (
    DataConfig,
    EvalConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    UnlearnConfig,
)
from fednot.data.federated import (
    ClientData,
    Federation,
    ForbiddenSamples,
    UnlabeledSamples,
)
from fednot.data.synthetic import synthetic_images, tiny_federation
from fednot.federation.fedavg import FedAvg, RoundRecord
from fednot.progress import Silent
from fednot.types import StateDict
from fednot.unlearning.base import Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext

__all__ = [
    "TINY_OPTIONS",
    "centralized_experiment",
    "check_unlearner",
    "every_method_config",
    "forbid_clients",
    "forbid_samples",
    "interrupted_at_round",
    "synthetic_images",
    "tiny_config",
    "tiny_federation",
]


def tiny_config(num_clients: int = 3, **sections: object) -> RunConfig:
    """A `RunConfig` for a `tiny_federation`: a small MLP, 2 rounds, no cache.

    Keyword arguments replace whole sections (``train=TrainConfig(...)``) or top-level fields.
    """
    fields: dict[str, object] = {
        "data": DataConfig(num_clients=num_clients),
        "model": ModelConfig(name="mlp", options={"hidden": (16,)}),
        "train": TrainConfig(rounds=2, batch_size=8, lr=0.05),
        "unlearn": UnlearnConfig(forget_clients=(0,), recovery_rounds=2),
        "eval": EvalConfig(curve_every=0, mia_folds=2, retrain_floor=False),
        "seeds": (0,),
        "cache_dir": "",
        "save_models": False,
    }
    return RunConfig(**{**fields, **sections})  # type: ignore[arg-type]


TINY_OPTIONS: dict[str, dict[str, Any]] = {
    "retrain": {},
    "ft": {},
    "federaser": {"delta_t": 1},
    "fukd": {"epochs": 1},
    "pgd": {"epochs": 1, "num_random": 2, "batch_size": 16},
    "mode": {"rounds": 2, "degradation_rounds": 1},
    "fcu": {"iterations": 20, "fusion_interval": 10, "batch_size": 16},
    "puf": {"variant": "special"},
    "negsub": {},
    "not": {},
    "not_wb": {},
    "perturb": {},
}
"""Every method a client can request, with options small enough for a `tiny_federation`."""


def set_args(*settings: str) -> list[str]:
    """``--set`` before each ``key=value``: the command-line form of ``settings``."""
    return [part for setting in settings for part in ("--set", setting)]


def tiny_cli_settings(seeds: tuple[int, ...]) -> list[str]:
    """``--set`` arguments for a tiny run from the command line (mnist5k, an MLP, one round).

    Three clients, no server slice, a 32-16 MLP, one training and one recovery round, batch 64,
    a 2-repeat, 2-fold MIA, and ``seeds``: what `fednot tune` and `fednot analyze sensitivity`
    tests run.
    """
    return set_args(
        "data.num_clients=3",
        "data.server_samples=0",
        "model.name=mlp",
        "model.options.hidden=[32, 16]",
        "train.rounds=1",
        "train.batch_size=64",
        "unlearn.recovery_rounds=1",
        "eval.mia_repeats=2",
        "eval.mia_folds=2",
        f"seeds={list(seeds)}",
    )


def sample_record(method: str, seed: int, **fields: Any) -> Record:
    """A measured `Record` for tests, read as `Record.from_dict` reads a results.json record.

    ``fields`` are its keys (record fields, metrics by registered name) over these defaults:
    the title ``method.upper()``, the client scenario, no costs, one round, no requirement.
    """
    defaults: dict[str, Any] = {
        "method": method,
        "title": method.upper(),
        "seed": seed,
        "scenario": "client",
        "avg_gap": None,
        "comm_bytes": 0,
        "flops": 0,
        "step_comm_bytes": 0,
        "step_flops": 0,
        "rounds": 1,
        "stop_reason": "",
        "rounds_to_target": None,
        "comm_to_target": None,
        "seconds": 0.0,
        "requirements": "none",
    }
    return Record.from_dict({**defaults, **fields})


def every_method_config(config: RunConfig) -> RunConfig:
    """``config`` running every method of `TINY_OPTIONS`, with one recovery round.

    The server holds 16 samples: FUKD's unlabeled distillation set.
    """
    return replace(
        config,
        unlearn=replace(config.unlearn, recovery_rounds=1, methods=tuple(TINY_OPTIONS)),
        options={method: options for method, options in TINY_OPTIONS.items() if options},
        data=replace(config.data, server_samples=16),
    )


def forbid_clients(federation: Federation, client_ids: tuple[int, ...]) -> Federation:
    """Replace the training data of ``client_ids`` by views that raise on any read.

    Running a method on the result proves it never reads those samples: any read raises
    `fednot.errors.MissingRequirementError`.
    """
    reason = f"the training data of clients {list(client_ids)} was read"
    clients = [
        ClientData(c.id, ForbiddenSamples(c.train, reason), c.val) if c.id in client_ids else c
        for c in federation.clients
    ]
    return federation.replace(clients)


def forbid_samples(federation: Federation, sample_ids: tuple[int, ...]) -> Federation:
    """Make the listed training samples raise on any read, wherever they are held."""
    forbidden = torch.tensor(sample_ids, dtype=torch.int64)
    reason = f"forbidden training samples (e.g. {list(sample_ids[:3])}) were read"
    clients = [
        ClientData(c.id, ForbiddenSamples(c.train, reason, forbidden), c.val)
        for c in federation.clients
    ]
    return federation.replace(clients)


def check_unlearner(method: Unlearner, *, seed: int = 0) -> None:
    """Conformance checks every method must pass; raises `AssertionError` on the first failure.

    On a tiny federation (3 clients, a small MLP, client 0 forgotten client-wise) or, for a
    method that serves only the centralized scenario, one data holder forgetting a random
    quarter of its data, with recovery off so the method's own output is examined:

    - the declared requirements are consistent (a history spec iff ``history`` is declared);
    - the declared ``schedule`` is the one its step returns (``fednot tune`` tunes the recovery
      learning rate of the methods that declare ``"recovery"``);
    - the output keeps every key, shape and dtype of the input state, also for a model with
      BatchNorm (float running statistics, an integer counter: a small ResNet-18);
    - the same seed gives a bit-identical output;
    - a method that does not declare ``forget_data`` runs with the forget samples replaced by
      views that raise on any read, so it provably never reads them.
    """
    declared = method.requirements.history
    assert (method.history_spec() is not None) == declared, (
        f"{method.name}: history_spec() must be given exactly when requirements.history is True"
    )
    federated = "client" in method.scenarios
    config, make = _federated_setup() if federated else _centralized_setup()

    def once(federation: Federation, config: RunConfig = config) -> StateDict:
        trained = Experiment(config, seed, federation=make(), progress=Silent()).pretrain(
            history=method.history_spec()
        )
        exp = Experiment(config, seed, federation=federation, progress=Silent())
        return exp.unlearn(trained, exp.scenario.request, method).state

    schedules: list[str] = []
    step = method.unlearn

    def spy(state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        result = step(state, ctx)
        schedules.append(result.schedule)
        return result

    with mock.patch.object(method, "unlearn", spy):
        first = once(make())
    assert all(s == method.schedule for s in schedules), (
        f"{method.name}: declares schedule = {method.schedule!r}, but its step returned "
        f"{schedules[0]!r}; set the class attribute `schedule` to what `unlearn` returns"
    )
    _check_layout(
        method.name,
        first,
        Experiment(config, seed, federation=make(), progress=Silent()).initial_state,
    )
    second = once(make())
    assert all(torch.equal(first[k], second[k]) for k in first), (
        f"{method.name}: the same seed gave different outputs"
    )
    batchnorm = replace(config, model=ModelConfig(name="resnet18", options={"width": 4}))
    reference = Experiment(batchnorm, seed, federation=make(), progress=Silent()).initial_state
    assert any(not v.is_floating_point() for v in reference.values())  # the counter
    _check_layout(method.name, once(make(), batchnorm), reference)
    if not method.requirements.forget_data:
        request = Experiment(config, seed, federation=make(), progress=Silent()).scenario.request
        if federated:
            once(forbid_clients(make(), request.clients))
        else:
            assert request.indices is not None
            once(forbid_samples(make(), request.indices))


def _check_layout(name: str, out: StateDict, reference: StateDict) -> None:
    """Every key of ``reference``, each with its shape and dtype."""
    assert set(out) == set(reference), f"{name}: the state's keys changed"
    for key, value in reference.items():
        assert out[key].shape == value.shape and out[key].dtype == value.dtype, (
            f"{name}: {key} changed from {value.dtype}{tuple(value.shape)} to "
            f"{out[key].dtype}{tuple(out[key].shape)}"
        )


def _federated_setup() -> tuple[RunConfig, Callable[[], Federation]]:
    config = tiny_config(unlearn=UnlearnConfig(recovery_rounds=0), data=_data_with_server())
    return config, lambda: _with_server(tiny_federation())


def _centralized_setup(**sections: object) -> tuple[RunConfig, Callable[[], Federation]]:
    config = tiny_config(
        num_clients=1,
        scenario=CentralizedScenario(forget_ratio=0.25),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=0),
        **sections,
    )
    return config, lambda: tiny_federation(num_clients=1)


def centralized_experiment(seed: int = 0, **sections: object) -> Experiment:
    """One data holder forgetting a seeded quarter of its samples, recovery off.

    The setting of `check_unlearner` for centralized methods, and of their own tests;
    ``sections`` replace whole configuration sections (e.g. ``model=ModelConfig(...)``).
    """
    config, make = _centralized_setup(**sections)
    return Experiment(config, seed, federation=make(), progress=Silent())


def _data_with_server() -> DataConfig:
    return DataConfig(num_clients=3, server_samples=16)


def _with_server(federation: Federation) -> Federation:
    """Give a tiny federation a 16-sample server slice taken from its test set."""
    test = federation.test
    server = UnlabeledSamples(test.source, test.indices[:16])
    return replace(federation, test=test.view(test.indices[16:]), server=server)


@contextmanager
def interrupted_at_round(round_: int) -> Iterator[None]:
    """Within the block, every FedAvg phase raises `KeyboardInterrupt` when round ``round_`` starts.

    For resumption tests: the rounds before it finish (and are checkpointed) as in a real run
    stopped by Ctrl-C.
    """
    original = FedAvg.round

    def round_or_stop(
        self: FedAvg, state: StateDict, number: int, *, validate: bool = True
    ) -> tuple[StateDict, RoundRecord]:
        if number == round_:
            raise KeyboardInterrupt
        return original(self, state, number, validate=validate)

    with mock.patch.object(FedAvg, "round", round_or_stop):
        yield
