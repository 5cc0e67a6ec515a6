"""The sections of a run's configuration: frozen dataclasses, one per concern.

Every default that the NoT paper does not fix is marked "ours" with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from fednot.config.methods import select_methods
from fednot.errors import ConfigError
from fednot.metrics.mia import DEFAULT_REPEATS

PartitionScheme = Literal["iid", "dirichlet", "shards"]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32: a larger learning rate or decay overflows when it meets the weights."""


def _require_finite(section: object, name: str) -> None:
    """Every float of ``section`` (and of its float-valued mappings) is a finite number.

    NaN fails every range check, but infinity passes ``>= 0``: an infinite momentum or weight
    decay would be accepted and then blamed, rounds later, on the learning rate.
    """
    for f in fields(section):  # type: ignore[arg-type]
        value = getattr(section, f.name)
        items = value.items() if isinstance(value, Mapping) else [(None, value)]
        for key, item in items:
            if isinstance(item, float) and not abs(item) <= FLOAT32_MAX:
                where = f"{name}.{f.name}" + ("" if key is None else f".{key}")
                raise ConfigError(
                    f"{where} must be a finite number (of float32's range, |x| <= 3.4e38: the "
                    f"weights are float32), got {item}."
                )


@dataclass(frozen=True)
class DataConfig:
    """Which data set, and how it is split among clients."""

    # mnist5k (embedded) | mnist | fashion_mnist | cifar10 | cifar100 | caltech101 | imagefolder,
    # an installed package's entry point (group fednot.datasets), or "pkg.module:load"
    dataset: str = "mnist5k"
    root: str | None = None  # folder holding the data set's files; unused for mnist5k
    # resize to this size (caltech101: None = 224; imagefolder; user loaders that accept it)
    image_size: int | None = None
    # seeded, stratified hold-out of the training split as the test set, where the format has no
    # test split or holdout_test is set (paper: 20 %)
    test_fraction: float = 0.2
    # hold out test_fraction of the training split as the test set even where the data set has a
    # test split of its own, which is then never read (`fednot tune`'s validation: docs/tuning.md)
    holdout_test: bool = False
    num_clients: int = 10  # paper: 10
    partition: PartitionScheme = "iid"  # paper: IID unless stated
    alpha: float = 0.1  # Dirichlet concentration; smaller means more label skew (ours: 0.1)
    shards_per_client: int = 2  # label shards per client (McMahan et al.'s pathological split)
    min_client_samples: int = 10  # Dirichlet draws are repeated until each client has this many
    val_fraction: float = 0.2  # each client's validation share (paper: train/val = 80:20)
    # keep at most this many samples (training + validation) of each client's share, a seeded
    # subset; None keeps all. Bounds a round's cost on large data sets (fmnist-cnn preset).
    client_samples: int | None = None
    augment: bool | None = None  # None = the data set's default (CIFAR: crop + flip; else none)
    server_samples: int = (
        0  # unlabeled slice held by the server, reserved before partitioning (FUKD)
    )

    def __post_init__(self) -> None:
        _require_finite(self, "data")
        _require(self.num_clients >= 1, f"data.num_clients must be >= 1, got {self.num_clients}.")
        for name in ("test_fraction", "val_fraction"):
            value = getattr(self, name)
            _require(0.0 < value < 1.0, f"data.{name} must lie in (0, 1), got {value}.")
        _require(self.alpha > 0, f"data.alpha must be > 0, got {self.alpha}.")
        _require(self.shards_per_client >= 1, "data.shards_per_client must be >= 1.")
        _require(self.image_size is None or self.image_size >= 8, "data.image_size must be >= 8.")
        _require(self.server_samples >= 0, "data.server_samples must be >= 0.")
        _require(
            self.client_samples is None or self.client_samples >= 2,
            f"data.client_samples must be >= 2 (or absent to keep every sample), got "
            f"{self.client_samples}.",
        )


@dataclass(frozen=True)
class ModelConfig:
    """Which model; ``options`` are keyword arguments of its constructor."""

    # cnn (the NoT paper's) | mlp | resnet18 | vit | vit_b16, an installed package's entry point
    # (group fednot.models), or "pkg.module:factory" (docs/plugins.md)
    name: str = "cnn"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    """The FedAvg recipe of pre-training, shared by Retrain and (with `UnlearnConfig`) recovery.

    The NoT paper's hyperparameters are in an appendix that is not public; the defaults are ours:
    SGD with lr 0.01, momentum 0.9 and weight decay 5e-4 (docs/not.md, "Local training"), batch
    32 and 60 rounds (our MNIST-5k prototype, docs/not.md, "MNIST-5k prototype"). On MNIST-5k/CNN,
    lr 0.01 trains the original to 100 % training accuracy, so its memorisation of the forgotten
    client is measurable; the prototype's lr 0.05 stopped short of it (measured in issue 2's note).
    """

    rounds: int = 60  # maximum rounds ("until convergence" is not defined in the paper)
    local_epochs: int = 1
    batch_size: int = 32
    optimizer: Literal["sgd", "adamw"] = "sgd"  # a fresh optimiser state every round (ours)
    lr: float = 0.01
    momentum: float = 0.9  # SGD only
    weight_decay: float = 5e-4
    participation: float = 1.0  # fraction of clients sampled each round (paper: all)
    patience: int | None = None  # stop when the mean validation accuracy stalls this many rounds

    def __post_init__(self) -> None:
        _require_finite(self, "train")
        _require(self.rounds >= 1, f"train.rounds must be >= 1, got {self.rounds}.")
        _require(self.local_epochs >= 1, "train.local_epochs must be >= 1.")
        _require(self.batch_size >= 1, "train.batch_size must be >= 1.")
        _require(self.lr > 0, f"train.lr must be > 0, got {self.lr}.")
        _require(self.momentum >= 0, f"train.momentum must be >= 0, got {self.momentum}.")
        _require(
            self.weight_decay >= 0, f"train.weight_decay must be >= 0, got {self.weight_decay}."
        )
        _require(0.0 < self.participation <= 1.0, "train.participation must lie in (0, 1].")
        _require(self.patience is None or self.patience >= 1, "train.patience must be >= 1.")


@dataclass(frozen=True)
class UnlearnConfig:
    """The forget request, the methods to run, and the recovery rule every method shares.

    Every method's recovery follows the same rule (docs/protocol.md, "Stop rules"): a fixed
    budget of ``recovery_rounds`` FedAvg rounds by default. Two rules a deployment can use are
    options: ``recovery_patience`` (stop when the retained-validation accuracy has not improved
    for that many rounds) and ``target_val_acc`` as a number (an absolute accuracy) or
    ``"original"`` (the original model's retained-validation accuracy before the request, minus
    ``target_margin`` points; the server can measure it). ``"retrain"`` stops at Retrain's final
    validation accuracy: an oracle no deployment knows, kept for analyses and never a default.
    """

    forget_clients: tuple[int, ...] = (0,)  # paper: the first client asks to be forgotten
    # names, groups ("federated", "centralized") and exclusions ("-fukd"): `fednot.config.methods`
    methods: tuple[str, ...] = ("retrain", "ft", "not")
    recovery_rounds: int = 30  # the common budget R of FT, NoT and every baseline (ours)
    recovery_lr: float | None = None  # None = train.lr
    # optional early stop: a retained-validation accuracy (%), "original" (the original model's,
    # minus target_margin), or the oracle "retrain" (Retrain's final one; analyses only)
    target_val_acc: float | Literal["original", "retrain"] | None = None
    target_margin: float = 0.0  # points below the original's accuracy ("original" only)
    recovery_patience: int | None = None  # stop recovery when validation accuracy stalls
    # a method's own recovery learning rate (method name -> lr), over recovery_lr; `fednot tune`
    # writes it into a tuned preset (docs/tuning.md)
    method_recovery_lr: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_finite(self, "unlearn")
        _require(len(self.forget_clients) > 0, "unlearn.forget_clients must name a client.")
        _require(
            len(set(self.forget_clients)) == len(self.forget_clients),
            f"unlearn.forget_clients has duplicates: {list(self.forget_clients)}.",
        )
        # a selector of names, groups and exclusions, kept as the names it selects
        object.__setattr__(self, "methods", select_methods(self.methods))
        _require(self.recovery_rounds >= 0, "unlearn.recovery_rounds must be >= 0.")
        _require(
            self.recovery_lr is None or self.recovery_lr > 0, "unlearn.recovery_lr must be > 0."
        )
        _require(
            self.target_val_acc in (None, "retrain", "original")
            or 0 < float(self.target_val_acc) <= 100,
            'unlearn.target_val_acc is a percentage in (0, 100], "original" or "retrain", got '
            f"{self.target_val_acc!r}.",
        )
        _require(
            0 <= self.target_margin < 100,
            f"unlearn.target_margin is in points, in [0, 100), got {self.target_margin}.",
        )
        _require(
            self.recovery_patience is None or self.recovery_patience >= 1,
            "unlearn.recovery_patience must be >= 1.",
        )
        bad = {
            name: lr
            for name, lr in self.method_recovery_lr.items()
            if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf
        }
        _require(
            not bad,
            f"unlearn.method_recovery_lr holds learning rates, finite floats > 0; got {bad}.",
        )
        unknown = sorted(set(self.method_recovery_lr) - set(self.methods))
        _require(
            not unknown,
            f"unlearn.method_recovery_lr names {unknown}, which unlearn.methods "
            f"{list(self.methods)} does not run; its keys are names from unlearn.methods. Remove "
            "them, or add the methods to unlearn.methods.",
        )

    def recovery_lr_of(self, method: str) -> float | None:
        """``method``'s recovery learning rate: its own, else ``recovery_lr`` (None: train.lr)."""
        return self.method_recovery_lr.get(method, self.recovery_lr)


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation, trajectories and the membership-inference attack (docs/protocol.md)."""

    batch_size: int = 128  # evaluation batch size (128 measured fastest on 2 CPU cores)
    mia_folds: int = 5  # stratified cross-validation folds of the loss attack (ours)
    mia_repeats: int = DEFAULT_REPEATS  # draws of non-members and folds averaged per MIA (ours)
    mia_max_iter: int = 100  # Newton iterations of the attack's logistic regression
    # non-members: drawn with the forget set's label histogram ("label_matched"), or at random
    mia_nonmembers: Literal["random", "label_matched"] = "label_matched"
    mia_null_permutations: int = 200  # permutations of the MIA's noise floor; 0 = skip (ours)
    curve_every: int = 1  # recovery rounds between trajectory points; 0 = off
    curve_subset: int | None = None  # None: full sets; else at most this many samples per set
    # Retrain′: per seed, a retrain from another training seed, the floor of every gap (ours)
    retrain_floor: bool = True

    def __post_init__(self) -> None:
        _require_finite(self, "eval")
        _require(self.batch_size >= 1, "eval.batch_size must be >= 1.")
        _require(self.mia_folds >= 2, "eval.mia_folds must be >= 2.")
        _require(self.mia_repeats >= 1, "eval.mia_repeats must be >= 1.")
        _require(self.mia_max_iter >= 1, "eval.mia_max_iter must be >= 1.")
        _require(self.mia_null_permutations >= 0, "eval.mia_null_permutations must be >= 0.")
        _require(
            self.curve_subset is None or self.curve_subset >= 1,
            "eval.curve_subset must be >= 1 (or absent for the full sets).",
        )
        _require(self.curve_every >= 0, "eval.curve_every must be >= 0.")


MEMORY_FORMATS = ("channels_last", "contiguous")
"""The layouts a model's 4-D tensors can take (`RunConfig.memory_format`)."""

TUNED_RECOVERY_LR = "recovery_lr"
"""The key of `RunConfig.tuned` that marks ``unlearn.method_recovery_lr.<method>`` as tuned."""
