"""What the audit keeps of one model: its confidences on the forget set and its accuracies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fednot.benchmark.experiment import Experiment
from fednot.data.federated import Samples
from fednot.data.forget import ForgetSplit
from fednot.federation.divergence import check_evaluable
from fednot.federation.local import accuracy, forward
from fednot.metrics.forgetting_quality import logit_confidence
from fednot.store.cache import ModelCache
from fednot.types import StateDict

OUTPUTS_FORMAT = 1
"""Part of the oracle cache key: change it when `ModelOutputs` changes meaning."""


@dataclass(frozen=True)
class ModelOutputs:
    """One audited model.

    Attributes:
        confidences: logit-scaled confidence in the true label of each forgotten example, in the
            forget set's order (`fednot.metrics.forgetting_quality.logit_confidence`); empty if
            the model diverged.
        retain_acc: accuracy on D_r (%).
        test_acc: accuracy on the test set (%).
        forget_acc: accuracy on D_u (%).
        seconds: wall time to produce the model (unlearning or retraining; 0 if cached).
        diverged: why the model diverged (it is left out of the score), or ``None``.
    """

    confidences: np.ndarray
    retain_acc: float
    test_acc: float
    forget_acc: float
    seconds: float
    diverged: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN accuracies of a diverged model as ``None``)."""
        return {
            "confidences": [float(c) for c in self.confidences],
            **{k: _finite(getattr(self, k)) for k in ("retain_acc", "test_acc", "forget_acc")},
            "seconds": self.seconds,
            "diverged": self.diverged,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelOutputs:
        """Inverse of `to_dict`."""

        def number(key: str) -> float:
            return math.nan if data[key] is None else float(data[key])

        return cls(
            np.asarray(data["confidences"], np.float64),
            number("retain_acc"),
            number("test_acc"),
            number("forget_acc"),
            float(data["seconds"]),
            data["diverged"],
        )

    @classmethod
    def of_divergence(cls, reason: str, seconds: float) -> ModelOutputs:
        """A model that diverged."""
        return cls(np.zeros(0), math.nan, math.nan, math.nan, seconds, reason)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def measure(exp: Experiment, state: StateDict, split: ForgetSplit, seconds: float) -> ModelOutputs:
    """The audited outputs of ``state``: forget-set confidences, retain, test and forget accuracy.

    Raises:
        DivergenceError: ``state`` holds non-finite weights.
    """
    check_evaluable(state)
    exp.model.load_state_dict(state)
    logits, labels = forward(
        exp.model,
        split.forget,
        exp.federation.preprocess,
        batch_size=exp.config.eval.batch_size,
        device=exp.device,
    )
    confidences = logit_confidence(logits, labels).numpy()
    forget_acc = float((logits.argmax(dim=1) == labels).double().mean()) * 100

    def acc(samples: Samples) -> float:
        return accuracy(
            exp.model,
            samples,
            exp.federation.preprocess,
            batch_size=exp.config.eval.batch_size,
            device=exp.device,
        )

    return ModelOutputs(
        confidences, acc(split.retain), acc(exp.federation.test), forget_acc, seconds
    )


class OracleStore:
    """Retrained models' outputs in the model cache, keyed by what determines each model.

    A retrained model depends on the data, the request, the training recipe and its training
    seed, not on the methods audited: every audit of the same request shares these entries (and
    Retrain's trained models are in the same cache), so auditing another method, or auditing
    again into another folder, retrains nothing.
    """

    def __init__(self, cache: ModelCache) -> None:
        self.cache = cache

    @staticmethod
    def key(exp: Experiment, split: ForgetSplit) -> str:
        """The entry of the retrained model that ``exp`` (a reseeded experiment) trains."""
        return exp.cache_key(
            "audit-oracle", request=split.request.to_dict(), outputs=OUTPUTS_FORMAT
        )

    def load(self, key: str) -> ModelOutputs | None:
        """The stored outputs under ``key``, or ``None``."""
        entry = self.cache.load(key)
        return None if entry is None else ModelOutputs.from_dict(entry["outputs"])

    def save(self, key: str, outputs: ModelOutputs) -> None:
        """Store ``outputs`` under ``key`` (a no-op when the cache is off)."""
        self.cache.save(key, {"outputs": outputs.to_dict()})
