"""One seed of a run: build the federation, pre-train, unlearn, evaluate.

`Experiment` is the Python API's centre and the engine behind the CLI. It owns the seed streams,
the cost meters and the cache, and it is the only place that hands data to a method: the method
gets an `UnlearnContext` holding what its requirements declare, and nothing more.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from fednot.benchmark.curves import CurveRecorder, complete_log
from fednot.benchmark.evaluation import Metrics, curve_point, evaluate
from fednot.benchmark.preflight import check_federation, check_model, check_request, warn_if_trivial
from fednot.benchmark.scenarios import build_scenario
from fednot.benchmark.trajectory import budgets
from fednot.config import RunConfig
from fednot.configio import to_dict
from fednot.data.federated import Federation
from fednot.data.forget import ForgetSplit, split_request
from fednot.data.partition import Partition
from fednot.data.registry import load_federation
from fednot.environment import place_model, resolve_device, use_threads
from fednot.errors import UnsupportedScenarioError
from fednot.federation.aggregate import clone_state
from fednot.federation.backend import InProcess
from fednot.federation.costs import Costs, FlopMeter
from fednot.federation.divergence import check_evaluable, check_step
from fednot.federation.fedavg import FedAvg, RoundHook, StopRule, TrainLog
from fednot.federation.history import HistorySpec, TrainingHistory
from fednot.federation.local import LocalRecipe
from fednot.federation.outcome import Trained, UnlearnOutcome
from fednot.federation.training import Phase, recovery_stop, train_cached
from fednot.models.registry import create_model
from fednot.progress import Progress
from fednot.seeding import SeedStreams, derive_seed
from fednot.store.cache import ModelCache, cache_key
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.base import Unlearner
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.isolation import InputGuard
from fednot.unlearning.model_parts import ModelParts
from fednot.unlearning.provide import history_for, server_data_for
from fednot.unlearning.registry import create_unlearner
from fednot.unlearning.step import StepBackend, StepBackendFactory


class Experiment:
    """A federation, a model and one seed; see the module docstring.

    Args:
        config: the run's configuration.
        seed: the run seed all stage streams derive from.
        progress: where progress lines go (default: standard error; `fednot.progress.Silent`
            for none).
        federation: use this federation instead of reading ``config.data`` (tests, custom
            data); ``partition`` may accompany it for the record.
        partition: the partition the federation was built from.
        backends: where the clients' work runs, for a view of the federation (default:
            `InProcess`, in this process); the Flower ServerApp passes Flower's.
    """

    def __init__(
        self,
        config: RunConfig,
        seed: int,
        *,
        progress: Progress | None = None,
        federation: Federation | None = None,
        partition: Partition | None = None,
        backends: StepBackendFactory | None = None,
    ) -> None:
        use_threads(config.threads)  # before anything computes (None: torch's count stays)
        self.config = config
        self.backends = backends
        self.seed = seed
        self.streams = SeedStreams(seed)
        self.training_seed: int | None = None
        self.training_streams = self.streams
        self.progress = progress or Progress()
        if federation is None:
            self.progress.phase(f"seed {seed}: loading data ({config.data.dataset})")
            federation, partition = load_federation(config.data, self.streams)
        self.scenario = build_scenario(config, federation, self.streams)
        self.federation = self.scenario.federation
        self.partition = partition
        self.device = resolve_device(config.device)
        make = dict(
            input_shape=federation.input_shape,
            num_classes=federation.num_classes,
            options=config.model.options,
        )
        model = create_model(config.model.name, **make)  # type: ignore[arg-type]
        self.model = place_model(model, self.device, config.memory_format)
        self._make = make
        self.initial_state = self._initial_state()
        self.flops = FlopMeter(self.model)
        self.cache = ModelCache(Path(config.cache_dir) if config.cache_dir else None)
        # After the scenario: a backdoor scenario's poisoned pixels and labels must change the key.
        self._fingerprint = self.federation.fingerprint()
        check_federation(self.federation, config)
        check_model(self.model, self.federation, config.model.name)
        if self.device.type != "cpu":  # the pixels live where the model computes, moved once
            self.federation = self.federation.on_device(self.device)

    def reseeded(
        self, training_seed: int, *, progress: Progress | None = None, trajectory: bool = True
    ) -> Experiment:
        """This experiment with other training randomness (`fednot audit`'s model samples).

        The data, partition, request and evaluation streams stay those of ``seed``; the initial
        weights, every client's training streams and a method's own streams derive from
        ``(seed, "training", training_seed)`` instead. Cache keys include ``training_seed``.
        ``progress`` replaces where the twin's progress lines go; ``trajectory=False`` records
        no trajectory (``eval.curve_every = 0``: Retrain′, whose curve nothing reads).
        """
        twin = copy.copy(self)
        if not trajectory:
            twin.config = replace(self.config, eval=replace(self.config.eval, curve_every=0))
        twin.progress = progress or self.progress
        twin.training_seed = training_seed
        twin.training_streams = SeedStreams(derive_seed(self.seed, "training", training_seed))
        twin.initial_state = twin._initial_state()
        return twin

    def without(self, clients: Iterable[int], *, streams: tuple[str | int, ...] = ()) -> Experiment:
        """This experiment on its federation without ``clients`` (those who left before).

        The sequence scenario's view at a later request: splits, recovery, the clients' work and
        evaluation see only the clients still in the federation; the initial weights, the data
        and the evaluation streams stay this experiment's. ``streams`` (non-empty) derives the
        training streams from ``(seed, *streams)``, so a later request's rounds do not replay the
        shuffles of an earlier one.
        """
        twin = copy.copy(self)
        twin.federation = self.federation.without(clients)
        twin._fingerprint = twin.federation.fingerprint()
        if streams:
            twin.training_streams = SeedStreams(derive_seed(self.seed, *streams))
        return twin

    # -- stages ---------------------------------------------------------------------------

    def pretrain(self, history: HistorySpec | None = None) -> Trained:
        """FedAvg from the initial weights on every client (cached).

        Args:
            history: what to record for methods that need a training history (their
                `Unlearner.history_spec`); ``None`` records nothing.
        """
        spec = None if history is None or history.empty else history
        key = cache_key("pretrain", self._key_parts(history=spec and spec.to_dict()))
        phase = self._train(key, None, "pretrain", spec)
        warn_if_trivial(phase.log, self.federation.pooled_val().labels, self.config.train)
        return Trained(phase.state, phase.log, phase.cached, phase.history)

    def train(self, state: StateDict, rounds: int, label: str) -> tuple[StateDict, TrainLog]:
        """``rounds`` rounds of ordinary FedAvg (the pre-training recipe) on every client.

        Not cached, no early stop: the sequence scenario's training between two requests.
        """
        return self._fedavg(None, "pretrain", label).run(dict(state), StopRule(rounds))

    def split(self, request: ForgetRequest) -> ForgetSplit:
        """The retained federation and the forget set of ``request``."""
        return split_request(self.federation, request)

    def check_request(self, request: ForgetRequest | None = None) -> None:
        """Raise `ConfigError` now if ``request`` (default: the scenario's) cannot be evaluated.

        The retained clients need a validation sample and the forget set enough samples for the
        MIA's folds; without this check those fail after pre-training.
        """
        split = self.split(request or self.scenario.request)
        check_request(self.federation, split, self.config)

    def unlearn(
        self,
        original: Trained | StateDict,
        request: ForgetRequest,
        method: Unlearner | str,
        *,
        reference_val_acc: float | None = None,
        reference_costs: Costs | None = None,
    ) -> UnlearnOutcome:
        """Apply ``method`` to the trained model for ``request``, then recover.

        A method that declares ``schedule = "train"`` (Retrain) takes no step here: it is the
        pre-training recipe run anew from the initial weights on the retained clients (cached).

        Args:
            original: the pre-trained model (a `Trained`, whose recorded history methods that
                declare one receive, or a bare state).
            request: what to forget.
            method: an `Unlearner`, or a name: registered, an entry point, or
                ``"pkg.module:Class"`` (options from ``config.options[name]``).
            reference_val_acc: Retrain's final retained-validation accuracy, needed only by the
                oracle stop rule ``unlearn.target_val_acc = "retrain"``.
            reference_costs: Retrain's costs on this request: with a trajectory
                (``eval.curve_every``), the last round within each cost point is evaluated too,
                so every cost reading is exact (`fednot.benchmark.curves`).

        Raises:
            DivergenceError: the method's step, its recovery or Retrain diverged (a non-finite
                loss or non-finite weights); nothing non-finite is returned or cached.
        """
        if isinstance(method, str):
            method = create_unlearner(method, self.config.options.get(method))
        reason = method.not_applicable(self.scenario.serves)
        if reason is not None:
            raise UnsupportedScenarioError(reason)
        method.validate(self.model)
        split = self.split(request)
        if method.schedule == "train":
            return self._train_anew(method.name, split)
        trained = original if isinstance(original, Trained) else Trained(original, TrainLog())
        history = history_for(method, trained)
        backend = self._backend(split)
        ctx = self.context(method, split, history=history, backend=backend)
        guard = InputGuard(self.federation, self._fingerprint, history)  # no method changes inputs
        start = time.perf_counter()
        result = backend.unlearn_step(method, clone_state(trained.state), ctx)
        guard.check(method.name)
        options = self.config.options.get(method.name)
        check_step(result.state, method.name, options, reference=trained.state)
        step_costs = ctx.costs + result.costs + Costs(seconds=time.perf_counter() - start)
        first = self._curve_point(result.state, split) if self.config.eval.curve_every else {}
        if result.schedule == "none":
            state_out, log = result.state, TrainLog(stop_reason="no recovery: the step is complete")
        else:
            who = f"{len(split.retained.clients)} retained clients"
            self.progress.phase(f"seed {self.seed}: {method.name}: recovery on {who}")
            stop = recovery_stop(
                self.config.unlearn,
                reference_val_acc,
                lambda: self._backend(split).val_accuracy(trained.state),
            )
            limits = (
                {}
                if reference_costs is None
                else budgets(reference_costs.comm_bytes, reference_costs.flops)
            )
            state_out, log = self._recover(
                result.state, split, method.name, stop, limits, step_costs
            )
            self.progress.info(f"{method.name}: {log.stop_reason} after {len(log.rounds)} rounds")
        storage = history.storage_bytes() if history is not None else 0
        return UnlearnOutcome(
            method.name,
            state_out,
            step_costs,
            log,
            result.notes,
            first,
            storage_bytes=storage,
            step_state=result.state,
        )

    def context(
        self,
        method: Unlearner,
        split: ForgetSplit,
        *,
        history: TrainingHistory | None = None,
        backend: StepBackend | None = None,
    ) -> UnlearnContext:
        """The context the engine hands ``method`` for ``split`` (`unlearn` builds it here).

        Args:
            method: the method; its requirements decide what the context holds.
            split: the request's two sides (`split`).
            history: the recorded training history, for a method that declares one.
            backend: where the clients' jobs run (default: this experiment's, for ``split``).
        """
        parts = ModelParts(
            self.model,
            clone_state(self.initial_state),
            name=self.config.model.name,
            options=self.config.model.options,
            device=self.device,
            flops=self.flops,
        )
        return UnlearnContext.create(
            method,
            split,
            parts,
            self.training_streams,
            recipe=LocalRecipe.from_config(self.config.train),
            history=history,
            server_data=server_data_for(method, self.federation),
            backend=backend or self._backend(split),
        )

    def evaluate(
        self, state: StateDict, request: ForgetRequest | None = None, *, noise_floor: bool = True
    ) -> Metrics:
        """The metrics of ``state`` on ``request``'s split (default: the scenario's request).

        Every registered metric that applies to the scenario (`fednot.metrics.registry`): the
        four metrics, the validation accuracy, the attacks' statistics, and the scenario's own
        (the backdoor's attack success rate, the class-wise test accuracies). ``noise_floor``:
        also the attacks' permutation noise floors.

        Raises:
            DivergenceError: ``state`` holds NaN or infinite weights.
        """
        check_evaluable(state)
        self.progress.phase(f"seed {self.seed}: evaluating (retain, forget, test accuracy; MIA)")
        return evaluate(
            self.model,
            state,
            self.split(request or self.scenario.request),
            self.federation,
            self.streams,
            self.config.eval,
            device=self.device,
            noise_floor=noise_floor,
            scenario=self.scenario,
        )

    def cache_key(self, kind: str, **extra: Any) -> str:
        """A model-cache key for a result of ``kind`` that this experiment and ``extra`` determine.

        It covers the data, federation, model, training recipe, seed, training seed, device,
        thread count and memory format, like the keys of pre-training and Retrain.
        """
        return cache_key(kind, self._key_parts(**extra))

    # -- internals ------------------------------------------------------------------------

    def _initial_state(self) -> StateDict:
        generator = self.training_streams.torch("init")
        init = create_model(self.config.model.name, generator=generator, **self._make)  # type: ignore[arg-type]
        return clone_state(init.state_dict())

    def _backend(self, split: ForgetSplit | None) -> StepBackend:
        """Where the clients work: all of them (no split), or ``split``'s retained side."""
        federation = self.federation if split is None else split.retained
        if self.backends is not None:
            return self.backends(federation, split)
        return InProcess(
            self.model,
            federation,
            self.training_streams,
            flops=self.flops,
            device=self.device,
            eval_batch_size=self.config.eval.batch_size,
            forget=None if split is None else split.forget,
        )

    def _fedavg(
        self, split: ForgetSplit | None, phase: str, label: str, lr: float | None = None
    ) -> FedAvg:
        """FedAvg over all clients (no split) or ``split``'s retained side."""
        federation = self.federation if split is None else split.retained
        return FedAvg(
            self.model,
            federation,
            LocalRecipe.from_config(self.config.train, lr=lr),
            self.training_streams,
            phase=phase,
            label=label,
            participation=self.config.train.participation,
            device=self.device,
            flops=self.flops,
            progress=self.progress,
            eval_batch_size=self.config.eval.batch_size,
            communicates=self.scenario.serves != "centralized",
            backend=self._backend(split),
        )

    def _key_parts(self, **extra: Any) -> dict[str, Any]:
        data = to_dict(self.config.data)
        if not data["holdout_test"]:  # off: the keys made before the option existed stay valid
            del data["holdout_test"]
        return {
            "data": data,
            "federation": self._fingerprint,
            "model": to_dict(self.config.model),
            "train": to_dict(self.config.train),
            "seed": self.seed,
            "device": self.device.type,
            # a parallel reduction sums in another order: results depend on the thread count
            "threads": torch.get_num_threads(),
            "memory_format": self.config.memory_format,  # the same for layouts
            **({} if self.training_seed is None else {"training_seed": self.training_seed}),
            **extra,
        }

    def _train_anew(self, name: str, split: ForgetSplit) -> UnlearnOutcome:
        """A method of ``schedule = "train"`` (Retrain): pre-training's recipe on the retained side.

        From the run's initial weights, with the pre-training stop rule and streams, cached under
        the method's name (Retrain's key: ``cache_key("retrain", ...)``, as it always was).
        """
        curve = (self.config.eval.curve_every, self.config.eval.curve_subset)
        key = cache_key(name, self._key_parts(request=split.request.to_dict(), curve=curve))

        def measure(state: StateDict) -> dict[str, float]:
            return self._curve_point(state, split)

        hook = CurveRecorder(measure, curve[0], {}, Costs()) if curve[0] else None
        phase = self._train(key, split, name, None, hook)
        start, log = {}, phase.log
        if curve[0]:  # round 0, and the final model whatever round training stopped at
            start, log = measure(self.initial_state), complete_log(phase.log, phase.state, measure)
        return UnlearnOutcome(name, phase.state, Costs(), log, start=start, cached=phase.cached)

    def _train(
        self,
        key: str,
        split: ForgetSplit | None,
        label: str,
        spec: HistorySpec | None,
        on_round: RoundHook | None = None,
    ) -> Phase:
        """Pre-training (no split) and training anew on ``split``'s retained side; cached."""
        return train_cached(
            self._fedavg(split, "pretrain", label),
            StopRule(self.config.train.rounds, patience=self.config.train.patience),
            self.initial_state,
            cache=self.cache,
            key=key,
            history=spec,
            progress=self.progress,
            title=f"seed {self.seed}: {label}",
            on_round=on_round,
        )

    def _recover(
        self,
        state: StateDict,
        split: ForgetSplit,
        label: str,
        stop: StopRule,
        limits: dict[str, float],
        step_costs: Costs,
    ) -> tuple[StateDict, TrainLog]:
        unlearn = self.config.unlearn
        lr = unlearn.recovery_lr_of(label)  # the method's own (unlearn.method_recovery_lr), if set
        fedavg = self._fedavg(split, "recovery", label, lr=lr)
        if label in unlearn.method_recovery_lr:  # a divergence names the key that set the rate
            fedavg.stage = replace(fedavg.stage, lr_key=f"unlearn.method_recovery_lr.{label}")
        every = self.config.eval.curve_every
        if not every:
            return fedavg.run(dict(state), stop)
        recorder = CurveRecorder(lambda s: self._curve_point(s, split), every, limits, step_costs)
        state, log = fedavg.run(dict(state), stop, on_round=recorder)
        return state, recorder.complete(log, state)

    def _curve_point(self, state: StateDict, split: ForgetSplit) -> dict[str, float]:
        """The trajectory metrics of one point (`fednot.benchmark.evaluation.curve_point`)."""
        self.progress.note("evaluating a trajectory point")
        return curve_point(
            self.model,
            state,
            split,
            self.federation,
            self.streams,
            self.config.eval,
            device=self.device,
            scenario=self.scenario.serves,  # the kind whose metrics apply
        )
