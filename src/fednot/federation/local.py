"""A client's local training, and batched inference shared by training and evaluation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fednot.config import TrainConfig
from fednot.data.federated import Preprocess, Samples
from fednot.federation.aggregate import clone_state
from fednot.federation.costs import FlopMeter
from fednot.metrics.confidence import true_class_margin
from fednot.types import StateDict


@dataclass(frozen=True)
class LocalRecipe:
    """How a client trains in one round; a fresh optimiser state every round.

    ``frozen`` names parameters that are not trained (the layer-wise optimality check freezes
    one layer); they get no gradient, so neither the optimiser nor weight decay moves them.
    ``steps``, when set, replaces ``epochs`` by a budget of mini-batches: each (possibly
    partial) epoch reshuffles, so whole epochs draw what ``epochs`` would (FedEraser's
    calibration).
    """

    epochs: int = 1
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    frozen: frozenset[str] = frozenset()
    steps: int | None = None

    @classmethod
    def from_config(cls, config: TrainConfig, *, lr: float | None = None) -> LocalRecipe:
        """The recipe of a ``TrainConfig``, with an optional learning-rate override."""
        return cls(
            epochs=config.local_epochs,
            batch_size=config.batch_size,
            optimizer=config.optimizer,
            lr=config.lr if lr is None else lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )


_OPTIMIZERS: dict[str, Callable[[Iterator[nn.Parameter], LocalRecipe], torch.optim.Optimizer]] = {
    "sgd": lambda params, r: torch.optim.SGD(
        params, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay
    ),
    "adamw": lambda params, r: torch.optim.AdamW(params, lr=r.lr, weight_decay=r.weight_decay),
}


Loss = Callable[[Tensor, Tensor], Tensor]
"""A training loss of (logits, targets): the labels, or a teacher's logits."""
Penalty = Callable[[nn.Module, int], Tensor | None]
"""A regulariser of the model's weights, by epoch (counted from 0); ``None``: none that epoch."""


@dataclass(frozen=True)
class LocalUpdate:
    """What a client sends back after a round, plus what it cost."""

    state: StateDict
    num_samples: int
    loss: float
    flops: int


def local_train(
    model: nn.Module,
    state: StateDict,
    data: Samples,
    preprocess: Preprocess,
    recipe: LocalRecipe,
    generator: torch.Generator,
    *,
    flops: FlopMeter,
    device: torch.device | str = "cpu",
    teacher: nn.Module | None = None,
    loss: Loss | None = None,
    penalty: Penalty | None = None,
) -> LocalUpdate:
    """Train ``model`` from ``state`` on ``data`` for ``recipe.epochs`` epochs (or ``steps``).

    Shuffling and augmentation draw only from ``generator`` (the client's stream for this round).
    ``loss(logits, targets)`` replaces the cross-entropy with the labels (e.g. gradient ascent's
    negated one). With a ``teacher``, the targets are its logits instead, and the labels are never
    used: by default the loss is the cross-entropy with its hard predictions (MoDE's memory
    guidance), or e.g. a distillation loss (FUKD); each batch then also costs the teacher's
    forward pass. ``penalty(model, epoch)``, a regulariser of the weights, is added to the loss
    (ℓ1-sparse's γ_e·‖θ‖₁).
    """
    loss = loss or (nn.functional.cross_entropy if teacher is None else _pseudo_label_loss)
    model.load_state_dict(state)
    model.to(device).train()
    if teacher is not None:
        teacher.to(device).eval()
    trainable = [p for n, p in model.named_parameters() if n not in recipe.frozen]
    optimizer = _OPTIMIZERS[recipe.optimizer](iter(trainable), recipe)
    # summed on the device in float64, read once at the end: no host synchronisation per step
    # (the same IEEE operations as summing float(loss) * batch in Python, so the same value)
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    seen, cost, done, epoch = 0, 0, 0, 0
    while _more(recipe, epoch, done) and len(data):
        order = torch.randperm(len(data), generator=generator)
        for images, labels in data.batches(recipe.batch_size, order):
            x = preprocess(images, generator).to(device)
            targets = labels.to(device)
            if teacher is not None:
                with torch.no_grad():
                    targets = teacher(x)
                cost += flops.forward(tuple(x.shape))
            value = loss(model(x), targets)
            extra = None if penalty is None else penalty(model, epoch)
            if extra is not None:
                value = value + extra
            optimizer.zero_grad(set_to_none=True)
            value.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            total_loss += value.detach().double() * len(x)
            seen += len(x)
            cost += flops.train_step(tuple(x.shape))
            done += 1
            if done == recipe.steps:
                break
        epoch += 1
    mean_loss = float(total_loss) / max(seen, 1)
    return LocalUpdate(clone_state(model.state_dict()), len(data), mean_loss, cost)


def _pseudo_label_loss(logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Cross-entropy with the teacher's hard predictions ŷ = argmax teacher(x)."""
    return nn.functional.cross_entropy(logits, teacher_logits.argmax(dim=1))


def _more(recipe: LocalRecipe, epoch: int, done: int) -> bool:
    """Whether another (possibly partial) epoch runs."""
    return epoch < recipe.epochs if recipe.steps is None else done < recipe.steps


@torch.no_grad()
def forward(
    model: nn.Module,
    data: Samples,
    preprocess: Preprocess,
    *,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """The model's outputs for ``data`` in eval mode and view order, with the labels.

    Returns:
        ``(logits, labels)`` on the CPU: float32 ``[n, classes]`` and int64 ``[n]``.
    """
    model.to(device).eval()
    logits, labels = [], []
    for images, batch_labels in data.batches(batch_size):
        logits.append(model(preprocess(images).to(device)).float())
        labels.append(batch_labels)
    if not logits:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64)
    return torch.cat(logits).cpu(), torch.cat(labels)  # one copy back per set


def predict(
    model: nn.Module,
    data: Samples,
    preprocess: Preprocess,
    *,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Per-sample cross-entropy losses and correctness, in eval mode and view order.

    Returns:
        ``(losses, correct)``: float64 losses (natural log) and a boolean tensor.
    """
    logits, labels = forward(model, data, preprocess, batch_size=batch_size, device=device)
    if len(labels) == 0:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.bool)
    losses = nn.functional.cross_entropy(logits, labels, reduction="none").double()
    return losses, logits.argmax(dim=1) == labels


def predict_with_margins(
    model: nn.Module,
    data: Samples,
    preprocess: Preprocess,
    *,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor, Tensor]:
    """`predict`'s losses and correctness, plus the true-class margins, from one forward pass.

    The margin is phi = z_y − logsumexp_{j≠y} z_j = log(p_y / (1 − p_y)), computed in float64
    from the logits (`fednot.metrics.confidence.true_class_margin`): unlike the float32 loss, it
    still tells confident samples apart.

    Returns:
        ``(losses, correct, margins)``: float64 losses (natural log), a boolean tensor and float64
        margins, in view order.
    """
    logits, labels = forward(model, data, preprocess, batch_size=batch_size, device=device)
    if len(labels) == 0:
        empty = torch.zeros(0, dtype=torch.float64)
        return empty, torch.zeros(0, dtype=torch.bool), empty.clone()
    losses = nn.functional.cross_entropy(logits, labels, reduction="none").double()
    margins = torch.from_numpy(true_class_margin(logits.numpy(), labels.numpy()))
    return losses, logits.argmax(dim=1) == labels, margins


def accuracy(
    model: nn.Module,
    data: Samples,
    preprocess: Preprocess,
    *,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> float:
    """Top-1 accuracy in percent (NaN for an empty set)."""
    _, correct = predict(model, data, preprocess, batch_size=batch_size, device=device)
    return float(correct.double().mean() * 100) if len(correct) else float("nan")
