"""One seed of a run: build the federation, pre-train, unlearn, evaluate.

`Experiment` is the Python API's centre and the engine behind the CLI. It owns the seed streams,
the cost meters and the cache, and it is the only place that hands data to a method: the method
gets an `UnlearnContext` holding what its requirements declare, and nothing more.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fednot.cache import ModelCache, cache_key
from fednot.config import RunConfig
from fednot.configio import to_dict
from fednot.data.federated import Federation
from fednot.data.forget import ForgetSplit, split_request
from fednot.data.partition import Partition
from fednot.data.registry import load_federation
from fednot.evaluation import Metrics, evaluate
from fednot.federation.aggregate import clone_state
from fednot.federation.costs import Costs, FlopMeter
from fednot.federation.fedavg import FedAvg, StopRule, TrainLog
from fednot.federation.local import LocalRecipe, accuracy
from fednot.models.registry import create_model
from fednot.progress import Progress, Silent
from fednot.seeding import SeedStreams
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import UnlearnContext, Unlearner
from fednot.unlearning.registry import create_unlearner


@dataclass(frozen=True)
class Trained:
    """A pre-trained global model and the rounds that produced it."""

    state: StateDict
    log: TrainLog
    cached: bool = False


@dataclass(frozen=True)
class UnlearnOutcome:
    """A method's unlearned model, its costs and its recovery rounds.

    Attributes:
        method: the method's registry name.
        state: the final global state.
        step_costs: the method's own step (before recovery).
        log: the recovery rounds (Retrain: all its training rounds).
        notes: what the method recorded (e.g. the negated layers).
        start: metrics right after the method's step, before recovery (round 0 of the curves).
        cached: whether the result came from the cache.
    """

    method: str
    state: StateDict
    step_costs: Costs
    log: TrainLog
    notes: dict[str, Any] = field(default_factory=dict)
    start: dict[str, float] = field(default_factory=dict)
    cached: bool = False

    @property
    def costs(self) -> Costs:
        """Unlearning step plus recovery: what the NoT paper's Comm. and Comp. columns count."""
        return self.step_costs + self.log.costs


class Experiment:
    """A federation, a model and one seed; see the module docstring.

    Args:
        config: the run's configuration.
        seed: the run seed all stage streams derive from.
        progress: where progress lines go (default: nowhere).
        federation: use this federation instead of reading ``config.data`` (tests, custom
            data); ``partition`` may accompany it for the record.
        partition: the partition the federation was built from.
    """

    def __init__(
        self,
        config: RunConfig,
        seed: int,
        *,
        progress: Progress | None = None,
        federation: Federation | None = None,
        partition: Partition | None = None,
    ) -> None:
        self.config = config
        self.seed = seed
        self.streams = SeedStreams(seed)
        self.progress = progress or Silent()
        if federation is None:
            federation, partition = load_federation(config.data, self.streams)
        self.federation = federation
        self.partition = partition
        self.device = torch.device(config.device)
        make = dict(
            input_shape=federation.input_shape,
            num_classes=federation.num_classes,
            options=config.model.options,
        )
        self.model = create_model(config.model.name, **make).to(self.device)  # type: ignore[arg-type]
        init = create_model(config.model.name, generator=self.streams.torch("init"), **make)  # type: ignore[arg-type]
        self.initial_state = clone_state(init.state_dict())
        self.flops = FlopMeter(self.model)
        self.cache = ModelCache(Path(config.cache_dir) if config.cache_dir else None)
        self._fingerprint = _fingerprint(federation)

    # -- stages ---------------------------------------------------------------------------

    def pretrain(self) -> Trained:
        """FedAvg from the initial weights on every client (cached)."""
        key = cache_key("pretrain", self._key_parts())
        state, log, cached = self._train_cached(key, self.federation, "pretrain")
        return Trained(state, log, cached)

    def split(self, request: ForgetRequest) -> ForgetSplit:
        """The retained federation and the forget set of ``request``."""
        return split_request(self.federation, request)

    def unlearn(
        self, state: StateDict, request: ForgetRequest, method: Unlearner | str
    ) -> UnlearnOutcome:
        """Apply ``method`` to the trained ``state`` for ``request``, then recover."""
        if isinstance(method, str):
            method = create_unlearner(method, self.config.options.get(method))
        method.validate(self.model)
        split = self.split(request)
        if method.name == "retrain":
            return self._retrain(split)
        ctx = UnlearnContext(
            method=method.name,
            requirements=method.requirements,
            request=request,
            retained=split.retained,
            model=self.model,
            initial_state=self.initial_state,
            streams=self.streams,
            forget=split.forget,
        )
        start = time.perf_counter()
        result = method.unlearn(state, ctx)
        step_costs = result.costs + Costs(seconds=time.perf_counter() - start)
        self.progress.phase(f"seed {self.seed}: {method.name}: recovery on {_who(split)}")
        first = self._curve_point(result.state, split) if self.config.eval.curve_every else {}
        state_out, log = self._recover(result.state, split, method.name)
        return UnlearnOutcome(method.name, state_out, step_costs, log, result.notes, first)

    def evaluate(self, state: StateDict, request: ForgetRequest) -> Metrics:
        """The four metrics (plus validation accuracy) of ``state`` on ``request``'s split."""
        return evaluate(
            self.model, state, self.split(request), self.federation, self.streams,
            self.config.eval, device=self.device,
        )  # fmt: skip

    # -- internals ------------------------------------------------------------------------

    def _fedavg(
        self, federation: Federation, phase: str, label: str, lr: float | None = None
    ) -> FedAvg:
        return FedAvg(
            self.model, federation, LocalRecipe.from_config(self.config.train, lr=lr),
            self.streams, phase=phase, label=label, participation=self.config.train.participation,
            device=self.device, flops=self.flops, progress=self.progress,
            eval_batch_size=self.config.eval.batch_size,
        )  # fmt: skip

    def _key_parts(self, **extra: Any) -> dict[str, Any]:
        return {
            "data": to_dict(self.config.data),
            "federation": self._fingerprint,
            "model": to_dict(self.config.model),
            "train": to_dict(self.config.train),
            "seed": self.seed,
            **extra,
        }

    def _train_cached(
        self, key: str, federation: Federation, label: str
    ) -> tuple[StateDict, TrainLog, bool]:
        done = self.cache.load(key)
        if done is not None:
            self.progress.phase(f"seed {self.seed}: {label}: cached")
            return done["state"], TrainLog.from_dict(done["log"]), True
        partial = self.cache.load(key, partial=True)
        state, log = dict(self.initial_state), TrainLog()
        if partial is not None:
            state, log = partial["state"], TrainLog.from_dict(partial["log"])
        resumed = f", resuming after round {len(log.rounds)}" if log.rounds else ""
        self.progress.phase(
            f"seed {self.seed}: {label} (FedAvg, {len(federation.clients)} clients, up to "
            f"{self.config.train.rounds} rounds{resumed})"
        )
        stop = StopRule(self.config.train.rounds, patience=self.config.train.patience)
        state, log = self._fedavg(federation, "pretrain", label).run(
            state, stop, log=log,
            checkpoint=lambda s, lg: self.cache.save(key, _payload(s, lg), partial=True),
        )  # fmt: skip
        self.cache.save(key, _payload(state, log))
        self.progress.info(
            f"{label}: {log.stop_reason}; final val acc {log.rounds[-1].val_acc:.2f}%"
        )
        return state, log, False

    def _retrain(self, split: ForgetSplit) -> UnlearnOutcome:
        key = cache_key("retrain", self._key_parts(request=split.request.to_dict()))
        state, log, cached = self._train_cached(key, split.retained, "retrain")
        return UnlearnOutcome("retrain", state, Costs(), log, cached=cached)

    def _recover(
        self, state: StateDict, split: ForgetSplit, label: str
    ) -> tuple[StateDict, TrainLog]:
        unlearn = self.config.unlearn
        stop = StopRule(unlearn.recovery_rounds, unlearn.recovery_patience, unlearn.target_val_acc)
        every = self.config.eval.curve_every

        def curve(round_: int, new_state: StateDict) -> dict[str, float]:
            return self._curve_point(new_state, split) if every and round_ % every == 0 else {}

        fedavg = self._fedavg(split.retained, "recovery", label, lr=unlearn.recovery_lr)
        return fedavg.run(dict(state), stop, on_round=curve)

    def _curve_point(self, state: StateDict, split: ForgetSplit) -> dict[str, float]:
        """Test and forget accuracy on seeded subsets (at most ``eval.curve_subset`` samples)."""
        self.model.load_state_dict(state)
        limit = self.config.eval.curve_subset
        point = {}
        for name, samples in (("test_acc", self.federation.test), ("forget_acc", split.forget)):
            subset = samples.subsample(limit, self.streams.torch("curve", name))
            point[name] = accuracy(
                self.model, subset, self.federation.preprocess,
                batch_size=self.config.eval.batch_size, device=self.device,
            )  # fmt: skip
        return point


def _payload(state: StateDict, log: TrainLog) -> dict[str, Any]:
    return {"state": clone_state(state), "log": log.to_dict()}


def _who(split: ForgetSplit) -> str:
    return f"{len(split.retained.clients)} retained clients"


def _fingerprint(federation: Federation) -> str:
    """A hash of which samples each client holds and of the pixels behind them."""
    digest = hashlib.sha256()
    for client in federation.clients:
        digest.update(f"{client.id}:".encode())
        digest.update(client.train.indices.numpy().tobytes())
        digest.update(client.val.indices.numpy().tobytes())
    digest.update(federation.test.indices.numpy().tobytes())
    source = federation.clients[0].train.source
    digest.update(
        str((tuple(source.images.shape), int(source.images.sum(dtype=torch.int64)))).encode()
    )
    return digest.hexdigest()[:24]
