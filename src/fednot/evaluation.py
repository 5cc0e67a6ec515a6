"""Evaluate a global model on a forget request: the NoT paper's four metrics (`metrics.md`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from fednot.config import EvalConfig
from fednot.data.federated import Federation, Preprocess, Samples
from fednot.data.forget import ForgetSplit
from fednot.federation.local import predict
from fednot.metrics.mia import label_matched, loss_mia
from fednot.seeding import SeedStreams
from fednot.types import StateDict


@dataclass(frozen=True)
class Metrics:
    """Accuracies and MIA in percent.

    Attributes:
        retain_acc: accuracy on D_r, every retained training sample.
        forget_acc: accuracy on D_u, the forgotten training samples.
        test_acc: accuracy on the server's test set.
        mia: the balanced loss attack (50 = D_u indistinguishable from unseen data).
        mia_std: the attack's standard deviation over its folds.
        val_acc: accuracy on the retained clients' pooled validation splits.
        asr: backdoor attack success rate: the share of triggered test images (true label not
            the target label) classified as the target label (backdoor scenario only).
        forget_class_acc: test accuracy on the forgotten classes (class-wise only).
        remaining_class_test_acc: test accuracy on the other classes (class-wise only).
    """

    retain_acc: float
    forget_acc: float
    test_acc: float
    mia: float
    mia_std: float
    val_acc: float
    asr: float | None = None
    forget_class_acc: float | None = None
    remaining_class_test_acc: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        """JSON-ready form."""
        return asdict(self)

    def values(self) -> dict[str, float]:
        """The metrics that apply (those that are not ``None``)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def scenario_metrics(
    model: nn.Module,
    test: Samples,
    preprocess: Preprocess,
    *,
    triggered: Samples | None,
    target_label: int | None,
    classes: tuple[int, ...] | None,
    batch_size: int,
    device: torch.device | str,
) -> dict[str, float]:
    """The backdoor's attack success rate and the class-wise test accuracies, where they apply.

    ``model`` must already hold the state to evaluate.
    """
    out: dict[str, float] = {}
    if triggered is not None and target_label is not None:
        hits = []
        model.to(device).eval()
        with torch.no_grad():
            for images, _ in triggered.batches(batch_size):
                predicted = model(preprocess(images).to(device)).argmax(dim=1).cpu()
                hits.append(predicted == target_label)
        out["asr"] = _pct(torch.cat(hits))
    if classes is not None:
        _, correct = predict(model, test, preprocess, batch_size=batch_size, device=device)
        forgotten = torch.isin(test.labels, torch.tensor(classes))
        out["forget_class_acc"] = _pct(correct[forgotten])
        out["remaining_class_test_acc"] = _pct(correct[~forgotten])
    return out


def evaluate(
    model: nn.Module,
    state: StateDict,
    split: ForgetSplit,
    test_federation: Federation,
    streams: SeedStreams,
    config: EvalConfig,
    *,
    device: torch.device | str = "cpu",
) -> Metrics:
    """Evaluate ``state`` on the retain, forget, test and validation sets of ``split``.

    Args:
        model: a model of the right architecture (its weights are replaced by ``state``).
        state: the global state to evaluate.
        split: the request's retained federation and forget set.
        test_federation: supplies the test set and preprocessing.
        streams: the run's streams; the MIA draws from ``("mia",)``.
        config: evaluation settings.
        device: where to run.
    """
    model.load_state_dict(state)
    preprocess = test_federation.preprocess

    def run(samples: Samples) -> tuple[torch.Tensor, torch.Tensor]:
        return predict(model, samples, preprocess, batch_size=config.batch_size, device=device)

    _, retain_correct = run(split.retain)
    forget_losses, forget_correct = run(split.forget)
    test_losses, test_correct = run(test_federation.test)
    _, val_correct = run(split.retained.pooled_val())
    nonmembers = test_losses.numpy()
    if config.mia_nonmembers == "label_matched":
        rng = streams.numpy("mia", "label_matched")
        chosen = label_matched(
            split.forget.labels.numpy(), test_federation.test.labels.numpy(), rng
        )
        nonmembers = nonmembers[chosen]
    mia = loss_mia(
        forget_losses.numpy(),
        nonmembers,
        seed=streams.seed_for("mia"),
        folds=config.mia_folds,
        max_iter=config.mia_max_iter,
    )
    return Metrics(
        retain_acc=_pct(retain_correct),
        forget_acc=_pct(forget_correct),
        test_acc=_pct(test_correct),
        mia=mia.mean,
        mia_std=mia.std,
        val_acc=_pct(val_correct),
    )


def _pct(correct: torch.Tensor) -> float:
    return float(correct.double().mean() * 100) if len(correct) else float("nan")


def curve_point(
    model: nn.Module,
    state: StateDict,
    split: ForgetSplit,
    federation: Federation,
    streams: SeedStreams,
    config: EvalConfig,
    *,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """The four metrics of ``state`` on seeded subsets, for per-round curves (`metrics.md` §11).

    Each set is cut to at most ``config.curve_subset`` samples, always the same ones; the MIA
    uses the subsets' losses. Final metrics use the full sets (`evaluate`).
    """
    model.load_state_dict(state)
    sets = {"retain_acc": split.retain, "forget_acc": split.forget, "test_acc": federation.test}
    point: dict[str, float] = {}
    losses: dict[str, np.ndarray] = {}
    for name, samples in sets.items():
        subset = samples.subsample(config.curve_subset, streams.torch("curve", name))
        loss, correct = predict(
            model, subset, federation.preprocess, batch_size=config.batch_size, device=device
        )
        point[name] = _pct(correct)
        losses[name] = loss.numpy()
    folds = min(config.mia_folds, len(losses["forget_acc"]), len(losses["test_acc"]))
    if folds >= 2:
        point["mia"] = loss_mia(
            losses["forget_acc"], losses["test_acc"], seed=streams.seed_for("mia", "curve"),
            folds=folds, max_iter=config.mia_max_iter,
        ).mean  # fmt: skip
    return point
