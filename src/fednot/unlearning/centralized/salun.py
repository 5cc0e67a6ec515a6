"""SalUn: saliency unlearning, random labels on the salient weights only.

C. Fan, J. Liu, Y. Zhang, D. Wei, E. Wong, S. Liu, "SalUn: Empowering Machine Unlearning via
Gradient-based Weight Saliency in Both Image Classification and Generation", ICLR 2024 (arXiv
2310.12508). Official code: ``OPTML-Group/Unlearn-Saliency`` (``Classification/generate_mask.py``,
``Classification/unlearn/RL.py``, ``README.md``); docs/methods.md, "SalUn".

1. Saliency (`forget_gradient`, `saliency_mask`): in eval mode, the gradient of −CE on D_f,
   summed over mini-batches of the batch-mean loss; its magnitude |g| ranks every parameter entry
   of the model globally, and the mask is 1 on the top ``mask_ratio`` fraction (paper; code).
2. Unlearning: RandL (`fednot.unlearning.centralized.rand_label`) with the mask on the gradients
   before every step; after every step the masked-out weights are reset to θ_o and their momentum
   is zeroed, so weight decay cannot move them (code: the "Fix weight decay" commit). BatchNorm
   statistics are buffers, not weights: they keep updating in train mode, as in the code.

Defaults: ``epochs=10``, ``lr=0.013``, ``mask_ratio=0.5`` (code: the README example for CIFAR-10
with 10 % random forgetting); SGD ``momentum=0.9``, ``weight_decay=5e-4``, ``batch_size=256`` (code:
the common setup), also the mask pass's batch size (code).

Ours:
- the mask keeps round(ratio·N) entries of the N parameter entries (the code truncates,
  int(ratio·N); the two differ by at most one entry); ties in |g| go to the entry that comes first
  in parameter order, so the mask is deterministic;
- the mask pass reads D_f in view order without augmentation (the code shuffles; in eval mode
  with the batch-mean loss only the last partial batch's weight depends on the order);
- ``mode="merged"``, RandL's fednot default (NoT's wording); ``mode="alternating"`` is the code's
  CIFAR-10 path (one pass over relabelled D_f, then one over D_r).

Cost: one training step per batch of the mask pass, then RandL's E epochs over D_f ∪ D_r.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from fednot.errors import ConfigError
from fednot.types import StateDict
from fednot.unlearning.base import Requirements, Unlearner, UnlearnResult
from fednot.unlearning.centralized.rand_label import Mode, train_random_labels
from fednot.unlearning.centralized.scope import CENTRALIZED, CENTRALIZED_NOTE
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.options import (
    expect,
    float_in,
    non_negative_float,
    one_of,
    positive_float,
    positive_int,
)
from fednot.unlearning.registry import register_unlearner
from fednot.unlearning.space import IntRange, Range


def forget_gradient(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> StateDict:
    """Σ over ``batches`` of ∂(−CE)/∂θ, the batch-mean loss; zeros where no gradient flows.

    The model is used as it is (SalUn puts it in eval mode first); its ``.grad`` fields are left
    untouched.
    """
    params = dict(model.named_parameters())
    totals = {name: torch.zeros_like(p) for name, p in params.items()}
    for x, labels in batches:
        loss = -nn.functional.cross_entropy(model(x), labels)
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for name, grad in zip(params, grads, strict=True):
            if grad is not None:
                totals[name] += grad.detach()
    return totals


def saliency_mask(gradients: Mapping[str, Tensor], ratio: float) -> dict[str, Tensor]:
    """1 on the round(ratio·N) entries of largest |g| over all tensors together, else 0.

    Ties are broken by position: the entry earlier in ``gradients``' order (then in the
    tensor's flattened order) ranks first. Masks have the gradients' shapes and dtypes.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"Expected the mask ratio to lie in [0, 1], got {ratio!r}.")
    names = list(gradients)
    flat = torch.cat([gradients[n].detach().abs().flatten().double().cpu() for n in names])
    keep = round(ratio * flat.numel())
    order = torch.sort(flat, descending=True, stable=True).indices
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[order[:keep]] = True
    masks, start = {}, 0
    for name in names:
        grad = gradients[name]
        part = chosen[start : start + grad.numel()].reshape(grad.shape)
        masks[name] = part.to(device=grad.device, dtype=grad.dtype)
        start += grad.numel()
    return masks


@register_unlearner
class SalUn(Unlearner):
    """RandL restricted to the weights most salient for the forget set."""

    name = "salun"
    title = "SalUn"
    requirements = Requirements(forget_data=True)
    scenarios = CENTRALIZED
    scenario_note = CENTRALIZED_NOTE
    schedule = "none"
    # 10 epochs over a CIFAR-10 D_f ∪ D_r (~157 batches of 256); MNIST-5k's gives 13
    search_space = {
        "epochs": IntRange(1, 150, log=True),
        "lr": Range(1e-3, 1e-1, log=True),
        "mask_ratio": Range(0.1, 0.9),
    }

    def __init__(
        self,
        *,
        epochs: int = 10,
        lr: float = 0.013,
        mask_ratio: float = 0.5,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        batch_size: int = 256,
        mode: Mode = "merged",
    ) -> None:
        self.epochs = positive_int(epochs, "epochs")
        self.lr = positive_float(lr, "lr")
        self.mask_ratio = float_in(mask_ratio, "mask_ratio", 0, 1)
        expect(mask_ratio > 0, "mask_ratio", "a float in (0, 1]", mask_ratio)
        self.momentum = float_in(momentum, "momentum", 0, 1, high_open=True)
        self.weight_decay = non_negative_float(weight_decay, "weight_decay")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.mode: Mode = one_of(mode, "mode", ("merged", "alternating"))

    def mask(self, state: StateDict, ctx: UnlearnContext) -> dict[str, Tensor]:
        """The saliency mask of ``state`` on D_f (eval mode); counts one train step per batch."""
        model = ctx.model
        model.load_state_dict(state)
        model.to(ctx.device).eval()

        def batches() -> Iterable[tuple[Tensor, Tensor]]:
            for images, labels in ctx.forget_data.batches(self.batch_size):
                x = ctx.preprocess(images).to(ctx.device)
                ctx.add_costs(flops=ctx.flops.train_step(tuple(x.shape)))
                yield x, labels.to(ctx.device)

        return saliency_mask(forget_gradient(model, batches()), self.mask_ratio)

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Compute the mask, then run masked RandL; the result is final (no recovery)."""
        forget, retain = ctx.forget_data, ctx.retained.pooled_train()
        if len(forget) == 0:
            raise ConfigError("SalUn needs forget samples, but the request selects none.")
        mask = self.mask(state, ctx)
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
            mask=mask,
            device=ctx.device,
        )
        ctx.add_costs(flops=run.flops)
        salient = sum(int(m.sum()) for m in mask.values())
        total = sum(m.numel() for m in mask.values())
        notes = {"salient": salient, "parameters": total, "steps": run.steps}
        return UnlearnResult(run.state, schedule="none", notes=notes)
