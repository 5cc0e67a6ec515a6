"""Evaluate a global model on a forget request: the NoT paper's four metrics (docs/metrics.md).

The same evaluation serves the final table and every trajectory point: the full sets by default,
and the membership-inference attack averaged over repeated draws (docs/protocol.md,
"Membership inference"). The final evaluation adds a second, stronger attack on the calibrated
true-class confidence (`fednot.metrics.confidence`), which trajectories do not carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from fednot.config import EvalConfig
from fednot.data.federated import Federation, Preprocess, Samples
from fednot.data.forget import ForgetSplit
from fednot.errors import DivergenceError
from fednot.federation.local import forward
from fednot.metrics.confidence import confidence_attack, true_class_margin
from fednot.metrics.metric import EvalInputs, SplitOutputs
from fednot.metrics.mia import loss_mia, mia_noise_floor
from fednot.metrics.registry import get_metric, names, registered
from fednot.seeding import SeedStreams
from fednot.types import StateDict

if TYPE_CHECKING:
    from fednot.benchmark.scenarios import Scenario


@dataclass(frozen=True)
class Metrics:
    """The registered metrics of one model, by name (`fednot.metrics.registry`).

    Accuracies and attack scores are in percent. Every evaluation has the metrics marked
    ``always`` (retain, forget, test and validation accuracy, the MIA and its spread); the others
    only where they apply (the backdoor's ASR, the class-wise accuracies) or were computed (the
    noise floors). The six always-present ones are also attributes.

    Attributes:
        values: metric name -> value, in registry order; a metric that does not apply is absent.
    """

    values: Mapping[str, float]

    def __getitem__(self, name: str) -> float:
        """The value of metric ``name``.

        Raises:
            KeyError: it is not registered, or not measured in this evaluation.
        """
        if name not in self.values:
            get_metric(name)  # an unknown name says which names exist
            raise KeyError(f"Metric {name!r} was not measured in this evaluation.")
        return self.values[name]

    def get(self, name: str) -> float | None:
        """The value of metric ``name``, ``None`` if it was not measured."""
        return self.values.get(name)

    def to_dict(self) -> dict[str, float | None]:
        """JSON-ready form: every registered metric, ``None`` where not measured."""
        return {name: self.values.get(name) for name in names()}

    @property
    def retain_acc(self) -> float:
        """Accuracy on D_r."""
        return self["retain_acc"]

    @property
    def forget_acc(self) -> float:
        """Accuracy on D_u."""
        return self["forget_acc"]

    @property
    def test_acc(self) -> float:
        """Accuracy on the test set."""
        return self["test_acc"]

    @property
    def mia(self) -> float:
        """The loss MIA, averaged over its repeats."""
        return self["mia"]

    @property
    def mia_std(self) -> float:
        """The spread of one draw's MIA over the repeats."""
        return self["mia_std"]

    @property
    def val_acc(self) -> float:
        """Accuracy on the retained clients' pooled validation splits."""
        return self["val_acc"]


def outputs(
    model: nn.Module,
    samples: Samples,
    preprocess: Preprocess,
    *,
    batch_size: int,
    device: torch.device | str,
    margins: bool = False,
) -> SplitOutputs:
    """``model``'s losses, predictions (and true-class margins) on ``samples``, in one pass."""
    logits, labels = forward(model, samples, preprocess, batch_size=batch_size, device=device)
    if len(labels) == 0:
        empty = torch.zeros(0, dtype=torch.float64)
        return SplitOutputs(empty, labels.clone(), labels, empty.clone() if margins else None)
    losses = nn.functional.cross_entropy(logits, labels, reduction="none").double()
    margin = (
        torch.from_numpy(true_class_margin(logits.numpy(), labels.numpy())) if margins else None
    )
    return SplitOutputs(losses, logits.argmax(dim=1), labels, margin)


def computed(inputs: EvalInputs, *, trajectory: bool = False) -> dict[str, float]:
    """The registered metrics with a compute function that apply to ``inputs``, by name.

    ``trajectory``: only those read along trajectories (`Metric.on_trajectory`).
    """
    out: dict[str, float] = {}
    for metric in registered():
        if metric.compute is None or not metric.applies_to(inputs.scenario):
            continue
        if trajectory and not metric.on_trajectory:
            continue
        value = metric.compute(inputs)
        if value is not None:
            out[metric.name] = value
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
    scenario: Scenario | None = None,
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
        scenario: supplies the kind it serves and its extra inputs (the backdoor's triggered
            test set and target label, the forgotten classes); ``None``: a client-wise request.
    """
    model.load_state_dict(state)
    preprocess = test_federation.preprocess

    def run(samples: Samples, margins: bool = False) -> SplitOutputs:
        return outputs(
            model, samples, preprocess, batch_size=config.batch_size, device=device, margins=margins
        )

    triggered = None if scenario is None else scenario.triggered_test
    inputs = EvalInputs(
        scenario="client" if scenario is None else scenario.serves,
        retain=run(split.retain),
        forget=run(split.forget, margins=True),
        test=run(test_federation.test, margins=True),
        val=run(split.retained.pooled_val()),
        triggered=None if triggered is None else run(triggered),
        target_label=None if scenario is None else scenario.target_label,
        classes=None if scenario is None else scenario.classes,
    )
    return Metrics({**computed(inputs), **_attacks(inputs, streams, config, noise_floor)})


def _attacks(
    inputs: EvalInputs, streams: SeedStreams, config: EvalConfig, noise_floor: bool
) -> dict[str, float]:
    """The loss MIA (mean, spread, floor) and the confidence attack's statistics, by name."""
    forget, test = inputs.forget, inputs.test
    sides = _attack_sides(forget.losses, forget.labels, test.losses, test.labels, config)
    mia = loss_mia(**sides, seed=streams.seed_for("mia"), **_attack_options(config))
    out = {"mia": mia.mean, "mia_std": mia.std}
    permutations = config.mia_null_permutations if noise_floor else 0
    if permutations:
        out["mia_floor"] = mia_noise_floor(
            **sides,
            seed=streams.seed_for("mia"),
            permutations=permutations,
            **_attack_options(config),
        ).half_width
    assert forget.margins is not None and test.margins is not None
    conf = confidence_attack(
        forget.margins.numpy(),
        test.margins.numpy(),
        member_labels=forget.labels.numpy(),
        nonmember_labels=test.labels.numpy(),
        seed=streams.seed_for("mia", "confidence"),
        permutations=permutations,
    )
    stats = {
        "conf_auc": conf.auc,
        "conf_tpr": conf.tpr_at_1fpr,
        "conf_auc_floor": conf.auc_floor,
        "conf_tpr_floor": conf.tpr_floor,
    }
    return {**out, **{k: v for k, v in stats.items() if v is not None}}


def _attack_sides(
    forget_losses: torch.Tensor,
    forget_labels: torch.Tensor,
    test_losses: torch.Tensor,
    test_labels: torch.Tensor,
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
        sides["member_labels"] = forget_labels.numpy()
        sides["nonmember_labels"] = test_labels.numpy()
    return sides


def _attack_options(config: EvalConfig) -> dict[str, int]:
    return {
        "folds": config.mia_folds,
        "repeats": config.mia_repeats,
        "max_iter": config.mia_max_iter,
    }


def curve_point(
    model: nn.Module,
    state: StateDict,
    split: ForgetSplit,
    federation: Federation,
    streams: SeedStreams,
    config: EvalConfig,
    *,
    device: torch.device | str = "cpu",
    scenario: str = "client",
) -> dict[str, float]:
    """The trajectory metrics of ``state`` (`Metric.on_trajectory`; docs/protocol.md).

    With ``config.curve_subset = None`` (the default) the point is measured exactly as the final
    table is: full sets, and the same repeated MIA with the same seed, so the last point of a
    trajectory equals the final evaluation. Otherwise each set is cut to at most
    ``curve_subset`` samples, always the same ones, and the MIA uses the subsets.
    """
    model.load_state_dict(state)
    # the subsets' stream keys keep the names they had when each set had one metric
    sets = {"retain_acc": split.retain, "forget_acc": split.forget, "test_acc": federation.test}
    out: dict[str, SplitOutputs] = {}
    for key, samples in sets.items():
        if config.curve_subset is not None:
            samples = samples.subsample(config.curve_subset, streams.torch("curve", key))
        out[key] = outputs(
            model, samples, federation.preprocess, batch_size=config.batch_size, device=device
        )
    inputs = EvalInputs(scenario, out["retain_acc"], out["forget_acc"], out["test_acc"])
    point = computed(inputs, trajectory=True)
    forget, test = inputs.forget, inputs.test
    sides = _attack_sides(forget.losses, forget.labels, test.losses, test.labels, config)
    stream = ("mia",) if config.curve_subset is None else ("mia", "curve")
    folds = min(config.mia_folds, len(forget), len(test))
    if folds >= 2:
        options = {**_attack_options(config), "folds": folds}
        point["mia"] = loss_mia(**sides, seed=streams.seed_for(*stream), **options).mean
    return point
