"""Evaluate a global model on a forget request: the NoT paper's four metrics (docs/metrics.md).

The same evaluation serves the final table and every trajectory point: the full sets by default,
and the membership-inference attack averaged over repeated draws (docs/protocol.md,
"Membership inference"). The final evaluation adds a second, stronger attack on the calibrated
true-class confidence (`fednot.metrics.confidence`), which trajectories do not carry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from fednot.config import EvalConfig
from fednot.data.federated import Federation, Preprocess, Samples
from fednot.data.forget import ForgetSplit
from fednot.errors import DivergenceError
from fednot.federation.local import predict, predict_with_margins
from fednot.metrics.confidence import confidence_attack
from fednot.metrics.mia import loss_mia, mia_noise_floor
from fednot.seeding import SeedStreams
from fednot.types import StateDict


@dataclass(frozen=True)
class Metrics:
    """Accuracies and MIA in percent.

    Attributes:
        retain_acc: accuracy on D_r, every retained training sample.
        forget_acc: accuracy on D_u, the forgotten training samples.
        test_acc: accuracy on the server's test set.
        mia: the balanced loss attack (50 = D_u indistinguishable from unseen data), averaged
            over ``eval.mia_repeats`` draws of non-members and folds.
        mia_std: the standard deviation of one draw's score over those repeats.
        mia_floor: the attack's noise floor: 95 % of attacks on a forget set of this size with no
            membership signal (a permutation null: membership reassigned once within each class,
            then the same averaged attack) land within 50 ± this many points (``None``: not
            computed).
        val_acc: accuracy on the retained clients' pooled validation splits.
        asr: backdoor attack success rate: the share of triggered test images (true label not
            the target label) classified as the target label (backdoor scenario only).
        forget_class_acc: test accuracy on the forgotten classes (class-wise only).
        remaining_class_test_acc: test accuracy on the other classes (class-wise only).
        conf_auc: the calibrated confidence attack's ROC AUC × 100, D_u against the test set
            (50 = chance; docs/metrics.md). Not part of the average gap.
        conf_tpr: its true-positive rate in percent at a 1 % false-positive rate (chance ≈ 1).
        conf_auc_floor: 95 % of its permutation-null AUCs lie within 50 ± this many points.
        conf_tpr_floor: the 95th percentile of its permutation-null TPRs, in percent.
    """

    retain_acc: float
    forget_acc: float
    test_acc: float
    mia: float
    mia_std: float
    val_acc: float
    mia_floor: float | None = None
    asr: float | None = None
    forget_class_acc: float | None = None
    remaining_class_test_acc: float | None = None
    conf_auc: float | None = None
    conf_tpr: float | None = None
    conf_auc_floor: float | None = None
    conf_tpr_floor: float | None = None

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
    noise_floor: bool = True,
) -> Metrics:
    """Evaluate ``state`` on the retain, forget, test and validation sets of ``split``.

    Args:
        model: a model of the right architecture (its weights are replaced by ``state``).
        state: the global state to evaluate.
        split: the request's retained federation and forget set.
        test_federation: supplies the test set and preprocessing.
        streams: the run's streams; the loss MIA draws from ``("mia",)``, the confidence
            attack's null from ``("mia", "confidence")``.
        config: evaluation settings.
        device: where to run.
        noise_floor: also compute the attacks' permutation noise floors (``mia_floor``,
            ``conf_auc_floor``, ``conf_tpr_floor``), with ``config.mia_null_permutations``.
    """
    model.load_state_dict(state)
    preprocess = test_federation.preprocess

    def run(samples: Samples) -> tuple[torch.Tensor, torch.Tensor]:
        return predict(model, samples, preprocess, batch_size=config.batch_size, device=device)

    def scored(samples: Samples) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return predict_with_margins(
            model, samples, preprocess, batch_size=config.batch_size, device=device
        )

    _, retain_correct = run(split.retain)
    forget_losses, forget_correct, forget_margins = scored(split.forget)
    test_losses, test_correct, test_margins = scored(test_federation.test)
    _, val_correct = run(split.retained.pooled_val())
    sides = _attack_sides(forget_losses, split.forget, test_losses, test_federation.test, config)
    mia = loss_mia(**sides, seed=streams.seed_for("mia"), **_attack_options(config))
    permutations = config.mia_null_permutations if noise_floor else 0
    floor = None
    if permutations:
        floor = mia_noise_floor(
            **sides,
            seed=streams.seed_for("mia"),
            permutations=permutations,
            **_attack_options(config),
        ).half_width
    conf = confidence_attack(
        forget_margins.numpy(),
        test_margins.numpy(),
        member_labels=split.forget.labels.numpy(),
        nonmember_labels=test_federation.test.labels.numpy(),
        seed=streams.seed_for("mia", "confidence"),
        permutations=permutations,
    )
    return Metrics(
        retain_acc=_pct(retain_correct),
        forget_acc=_pct(forget_correct),
        test_acc=_pct(test_correct),
        mia=mia.mean,
        mia_std=mia.std,
        val_acc=_pct(val_correct),
        mia_floor=floor,
        conf_auc=conf.auc,
        conf_tpr=conf.tpr_at_1fpr,
        conf_auc_floor=conf.auc_floor,
        conf_tpr_floor=conf.tpr_floor,
    )


def _attack_sides(
    forget_losses: torch.Tensor,
    forget: Samples,
    test_losses: torch.Tensor,
    test: Samples,
    config: EvalConfig,
) -> dict[str, Any]:
    """The attack's members (D_u) and non-members (test), with labels when label-matched.

    An infinite loss is clamped by the attack (`fednot.metrics.mia`); a NaN loss (a true-class
    logit that overflows: the loss is undefined) raises `DivergenceError`.
    """
    for where, losses in (("forget set", forget_losses), ("test set", test_losses)):
        undefined = int(torch.isnan(losses).sum())
        if undefined:
            raise DivergenceError(
                f"The model's loss is undefined (NaN) on {undefined} samples of the {where}: its "
                "logits overflow although its weights are finite, so the membership-inference "
                "attack cannot score it. It diverged in training: train it again with a lower "
                "learning rate (train.lr, unlearn.recovery_lr or the method's options)."
            )
    sides: dict[str, Any] = {
        "member_losses": forget_losses.numpy(),
        "nonmember_losses": test_losses.numpy(),
    }
    if config.mia_nonmembers == "label_matched":
        sides["member_labels"] = forget.labels.numpy()
        sides["nonmember_labels"] = test.labels.numpy()
    return sides


def _attack_options(config: EvalConfig) -> dict[str, int]:
    return {
        "folds": config.mia_folds,
        "repeats": config.mia_repeats,
        "max_iter": config.mia_max_iter,
    }


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
    """The four metrics of ``state``, for trajectories (docs/protocol.md, "Trajectories").

    With ``config.curve_subset = None`` (the default) the point is measured exactly as the final
    table is: full sets, and the same repeated MIA with the same seed, so the last point of a
    trajectory equals the final evaluation. Otherwise each set is cut to at most
    ``curve_subset`` samples, always the same ones, and the MIA uses the subsets.
    """
    model.load_state_dict(state)
    sets = {"retain_acc": split.retain, "forget_acc": split.forget, "test_acc": federation.test}
    point: dict[str, float] = {}
    losses: dict[str, torch.Tensor] = {}
    for name, samples in sets.items():
        if config.curve_subset is not None:
            samples = samples.subsample(config.curve_subset, streams.torch("curve", name))
            sets[name] = samples
        loss, correct = predict(
            model, samples, federation.preprocess, batch_size=config.batch_size, device=device
        )
        point[name] = _pct(correct)
        losses[name] = loss
    sides = _attack_sides(
        losses["forget_acc"], sets["forget_acc"], losses["test_acc"], sets["test_acc"], config
    )
    key = ("mia",) if config.curve_subset is None else ("mia", "curve")
    folds = min(config.mia_folds, len(sets["forget_acc"]), len(sets["test_acc"]))
    if folds >= 2:
        options = {**_attack_options(config), "folds": folds}
        point["mia"] = loss_mia(**sides, seed=streams.seed_for(*key), **options).mean
    return point
