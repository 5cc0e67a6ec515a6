"""RandL: unlearning by fine-tuning on randomly relabelled forget data.

Attributed to A. Golatkar, A. Achille, S. Soatto, "Eternal Sunshine of the Spotless Net:
Selective Forgetting in Deep Networks", CVPR 2020 (arXiv 1911.04933); called RL in SalUn (Fan et
al., ICLR 2024). NoT paper §6.2: "the forget set is randomly relabeled, followed by fine-tuning
the model on the updated dataset" (docs/methods.md, "RandL").

Each epoch, every forget sample gets a label drawn uniformly from all classes (it may equal the
true one) and the model trains with cross-entropy on D_f ∪ D_r, where D_r keeps its true labels.

- ``mode="merged"`` (ours, following NoT's wording; also the code's CIFAR-100/TinyImageNet path):
  labels drawn once per epoch, then D_f ∪ D_r shuffled together.
- ``mode="alternating"`` (code: ``OPTML-Group/Unlearn-Saliency/Classification/unlearn/RL.py``,
  CIFAR-10/SVHN): one pass over D_f with labels drawn per batch, then one pass over D_r.

Defaults: 10 epochs at SGD lr 0.01 (ours, as centralized FT in the reference code;
docs/methods.md, "Retrain and FT (centralized)"); momentum 0.9, weight decay 5e-4 and batch 256
(code: the common setup of ``OPTML-Group/Unlearn-Sparse``).

`train_random_labels` is the reusable loop; its optional gradient ``mask`` makes it SalUn's
"masked RandL" (the code's ``_apply_mask_to_grads`` / ``_restore_masked_params``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from fednot.data.federated import Preprocess, Samples
from fednot.errors import ConfigError
from fednot.federation.aggregate import clone_state
from fednot.federation.costs import FlopMeter
from fednot.types import StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.centralized.scope import CENTRALIZED, CENTRALIZED_NOTE
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.options import non_negative_float, one_of, positive_float, positive_int
from fednot.unlearning.registry import register_unlearner
from fednot.unlearning.space import IntRange, Range

Mode = Literal["merged", "alternating"]
Mask = dict[str, Tensor]


def random_labels(count: int, num_classes: int, generator: torch.Generator) -> Tensor:
    """``count`` labels drawn uniformly from ``0..num_classes-1`` (the true label included)."""
    return torch.randint(0, num_classes, (count,), generator=generator)


def fetch_joint(
    first: Samples, second: Samples, positions: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Fetch positions of the concatenation ``first ∪ second``, in ``positions`` order.

    Positions below ``len(first)`` index ``first``; the others index ``second`` shifted by
    ``len(first)``. The views may lie over different sources.

    Returns:
        ``(images, labels, in_first)``: raw images, true labels, and which rows came from
        ``first``.
    """
    in_first = positions < len(first)
    images_a, labels_a = first.fetch(positions[in_first])
    images_b, labels_b = second.fetch(positions[~in_first] - len(first))
    where = torch.cat([torch.nonzero(in_first).flatten(), torch.nonzero(~in_first).flatten()])
    images = torch.empty((len(positions), *images_a.shape[1:]), dtype=images_a.dtype)
    labels = torch.empty(len(positions), dtype=labels_a.dtype)
    images[where] = torch.cat([images_a, images_b])
    labels[where] = torch.cat([labels_a, labels_b])
    return images, labels, in_first


def epoch_batches(
    forget: Samples,
    retain: Samples,
    *,
    num_classes: int,
    batch_size: int,
    mode: Mode,
    generator: torch.Generator,
) -> Iterator[tuple[Tensor, Tensor]]:
    """One RandL epoch as raw (images, labels) batches: D_f relabelled at random, D_r as is."""
    if mode == "alternating":
        forget_order = torch.randperm(len(forget), generator=generator)
        for images, labels in forget.batches(batch_size, forget_order):
            yield images, random_labels(len(labels), num_classes, generator)
        yield from retain.batches(batch_size, torch.randperm(len(retain), generator=generator))
        return
    noise = random_labels(len(forget), num_classes, generator)
    order = torch.randperm(len(forget) + len(retain), generator=generator)
    for start in range(0, len(order), batch_size):
        positions = order[start : start + batch_size]
        images, labels, in_forget = fetch_joint(forget, retain, positions)
        labels[in_forget] = noise[positions[in_forget]]
        yield images, labels


def check_mask(model: nn.Module, mask: Mask) -> None:
    """Raise `ConfigError` unless every mask entry names a parameter of ``model``, same shape."""
    params = dict(model.named_parameters())
    for name, value in mask.items():
        if name not in params or value.shape != params[name].shape:
            expected = tuple(params[name].shape) if name in params else "no such parameter"
            raise ConfigError(
                f"Expected the mask entry {name!r} to match a parameter of the model "
                f"({expected}), got shape {tuple(value.shape)}."
            )


def restore_masked(
    model: nn.Module, mask: Mask, start: Mask, optimizer: torch.optim.Optimizer
) -> None:
    """Reset masked-out (0) entries to ``start`` and zero their momentum (SalUn's fix)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name not in mask:
                continue
            keep = mask[name] != 0
            param.copy_(torch.where(keep, param, start[name]))
            buffer = optimizer.state.get(param, {}).get("momentum_buffer")
            if buffer is not None:
                buffer.masked_fill_(~keep, 0.0)


@dataclass(frozen=True)
class RandomLabelRun:
    """What `train_random_labels` returns: the trained state and what it cost."""

    state: StateDict
    flops: int
    steps: int


def train_random_labels(
    model: nn.Module,
    state: StateDict,
    forget: Samples,
    retain: Samples,
    preprocess: Preprocess,
    *,
    num_classes: int,
    epochs: int,
    lr: float,
    generator: torch.Generator,
    flops: FlopMeter,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 256,
    mode: Mode = "merged",
    mask: Mask | None = None,
    device: torch.device | str = "cpu",
) -> RandomLabelRun:
    """Train ``model`` from ``state`` with CE on relabelled D_f and D_r (SGD, fresh momentum).

    Args:
        model: scratch module of the architecture; ``state`` is loaded into it.
        state: the starting state (the original model).
        forget: D_f, relabelled uniformly at random every epoch.
        retain: D_r, with its true labels.
        preprocess: batch preprocessing; augmentation draws from ``generator``.
        num_classes: the range of the random labels.
        epochs: passes over D_f ∪ D_r.
        lr: SGD learning rate (constant).
        generator: the only source of randomness (orders, labels, augmentation).
        flops: counts one train step per batch.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        batch_size: samples per step.
        mode: ``"merged"`` or ``"alternating"`` (see the module docstring).
        mask: optional 0/1 tensors by parameter name (SalUn). Gradients are multiplied by the
            mask before each step; after each step, masked-out entries are reset to their
            values in ``state`` and their momentum is zeroed, so they stay bit-identical.
            Parameters absent from the mask train freely.
        device: where to train.

    Returns:
        The trained state (every key, shape and dtype of ``state``), its FLOPs and step count.
    """
    model.load_state_dict(state)
    model.to(device).train()
    if mask is not None:
        check_mask(model, mask)
        mask = {k: v.to(device) for k, v in mask.items()}
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    step = _MaskedStep(model, optimizer, mask)
    cost, steps = 0, 0
    for _ in range(epochs):
        batches = epoch_batches(
            forget,
            retain,
            num_classes=num_classes,
            batch_size=batch_size,
            mode=mode,
            generator=generator,
        )
        for images, labels in batches:
            x = preprocess(images, generator).to(device)
            step(nn.functional.cross_entropy(model(x), labels.to(device)))
            cost += flops.train_step(tuple(x.shape))
            steps += 1
    return RandomLabelRun(clone_state(model.state_dict()), cost, steps)


class _MaskedStep:
    """An optimiser step whose gradients and updates are confined to a mask (if any)."""

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, mask: Mask | None
    ) -> None:
        self.model, self.optimizer, self.mask = model, optimizer, mask or {}
        params = model.named_parameters()
        self.start = {k: p.detach().clone() for k, p in params if k in self.mask}

    def __call__(self, loss: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        for name, param in self.model.named_parameters():
            if param.grad is not None and name in self.mask:
                param.grad.mul_(self.mask[name].to(param.grad.dtype))
        self.optimizer.step()
        if self.mask:
            restore_masked(self.model, self.mask, self.start, self.optimizer)


@register_unlearner
class RandL(Unlearner):
    """Fine-tune on D_r together with D_f under fresh uniform random labels every epoch."""

    name = "randl"
    title = "RandL"
    requirements = Requirements(forget_data=True)
    scenarios = CENTRALIZED
    scenario_note = CENTRALIZED_NOTE
    schedule = "none"
    # 10 epochs over a CIFAR-10 D_f ∪ D_r (~157 batches of 256); MNIST-5k's gives 13
    search_space = {"epochs": IntRange(1, 150, log=True), "lr": Range(1e-3, 1e-1, log=True)}

    def __init__(
        self,
        *,
        epochs: int = 10,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        batch_size: int = 256,
        mode: Mode = "merged",
    ) -> None:
        self.epochs = positive_int(epochs, "epochs")
        self.lr = positive_float(lr, "lr")
        self.momentum = non_negative_float(momentum, "momentum")
        self.weight_decay = non_negative_float(weight_decay, "weight_decay")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.mode: Mode = one_of(mode, "mode", ("merged", "alternating"))

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Train on relabelled D_f and D_r; the result is final (no recovery follows)."""
        forget, retain = ctx.forget_data, ctx.retained.pooled_train()
        if len(forget) == 0:
            raise ConfigError("RandL relabels the forget data, but the request selects none.")
        run = train_random_labels(
            ctx.model,
            state,
            forget,
            retain,
            ctx.preprocess,
            num_classes=ctx.retained.num_classes,
            epochs=self.epochs,
            lr=self.lr,
            generator=ctx.generator("train"),
            flops=ctx.flops,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            mode=self.mode,
            device=ctx.device,
        )
        ctx.add_costs(flops=run.flops)
        notes = {"steps": run.steps, "forget_samples": len(forget), "retain_samples": len(retain)}
        return UnlearnResult(run.state, schedule="none", notes=notes)
