"""A FedAvg training phase run through the model cache: resumable, and reused when done.

Pre-training and Retrain go through here. The cache entry holds the final state, the per-round
log and, when asked for, the recorded training history; while training, the latest round is
checkpointed under the same key, so an interrupted phase resumes where it stopped.
`recovery_stop` builds the stop rule of a method's recovery from the run's settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fednot.config import UnlearnConfig
from fednot.errors import ConfigError
from fednot.federation.aggregate import clone_state
from fednot.federation.fedavg import FedAvg, RoundHook, StopRule, TrainLog
from fednot.federation.history import HistorySpec, TrainingHistory
from fednot.progress import Progress
from fednot.store.cache import ModelCache
from fednot.types import StateDict


@dataclass(frozen=True)
class Phase:
    """The result of a cached training phase."""

    state: StateDict
    log: TrainLog
    cached: bool
    history: TrainingHistory | None = None


def train_cached(
    fedavg: FedAvg,
    stop: StopRule,
    initial_state: StateDict,
    *,
    cache: ModelCache,
    key: str,
    history: HistorySpec | None,
    progress: Progress,
    title: str,
    on_round: RoundHook | None = None,
) -> Phase:
    """Run ``fedavg`` from ``initial_state`` until ``stop``, or load the finished run.

    Args:
        fedavg: the phase's FedAvg runner (its ``history`` is set here when recording).
        stop: the phase's budget and stop rule.
        initial_state: where training starts.
        cache: where finished phases and partial checkpoints live.
        key: the cache key; it must cover everything that determines the phase.
        history: what to record, or ``None``.
        progress: where to report.
        title: the phase's name in progress lines, e.g. ``"seed 0: pretrain"``.
        on_round: per-round metrics hook (curve points), stored in the rounds' ``extra``.
    """
    done = cache.load(key)
    if done is not None:
        progress.phase(f"{title}: cached")
        return Phase(done["state"], TrainLog.from_dict(done["log"]), True, _history(done, history))
    partial = cache.load(key, partial=True)
    state, log = dict(initial_state), TrainLog()
    recorder = None if history is None else TrainingHistory(history)
    if partial is not None:
        state, log = partial["state"], TrainLog.from_dict(partial["log"])
        recorder = _history(partial, history)
    resumed = f", resuming after round {len(log.rounds)}" if log.rounds else ""
    progress.phase(
        f"{title} (FedAvg, {len(fedavg.federation.clients)} clients, up to {stop.rounds} "
        f"rounds{resumed})"
    )
    fedavg.history = recorder
    state, log = fedavg.run(
        state,
        stop,
        log=log,
        on_round=on_round,
        checkpoint=lambda s, lg: cache.save(key, _payload(s, lg, recorder), partial=True),
    )
    cache.save(key, _payload(state, log, recorder))
    progress.info(f"{log.stop_reason}; final val acc {log.rounds[-1].val_acc:.2f}%")
    return Phase(state, log, False, recorder)


def recovery_stop(
    unlearn: UnlearnConfig, reference: float | None, original_val_acc: Callable[[], float]
) -> StopRule:
    """The stop rule of a method's recovery: its budget, patience and target accuracy, if any.

    Args:
        unlearn: the run's unlearning settings (``recovery_rounds``, ``recovery_patience``,
            ``target_val_acc``, ``target_margin``).
        reference: Retrain's final retained-validation accuracy; only the oracle target
            ``"retrain"`` reads it.
        original_val_acc: measures the original model on the retained validation data; called
            only for the target ``"original"``.
    """
    target = unlearn.target_val_acc
    if target == "original":
        target = original_val_acc() - unlearn.target_margin
    elif target == "retrain":
        if reference is None:
            raise ConfigError(
                'unlearn.target_val_acc = "retrain" (an oracle rule) needs Retrain\'s validation '
                "accuracy: run Retrain first and pass reference_val_acc."
            )
        target = reference
    return StopRule(unlearn.recovery_rounds, unlearn.recovery_patience, target)


def _payload(state: StateDict, log: TrainLog, history: TrainingHistory | None) -> dict[str, Any]:
    payload = {"state": clone_state(state), "log": log.to_dict()}
    if history is not None:
        payload["history"] = history.to_payload()
    return payload


def _history(payload: dict[str, Any], spec: HistorySpec | None) -> TrainingHistory | None:
    if spec is None:
        return None
    return TrainingHistory.from_payload(payload["history"])
