"""Linear centred kernel alignment (CKA) between two representations of the same inputs.

S. Kornblith, M. Norouzi, H. Lee, G. Hinton, "Similarity of Neural Network Representations
Revisited", ICML 2019. For activations X (n×p) and Y (n×q) of the same n inputs, flattened per
sample and with columns centred (X_c = HX, H = I − 11ᵀ/n), in float64 (docs/metrics.md, "CKA"):

    CKA(X, Y) = ‖Y_cᵀ X_c‖_F² / (‖X_cᵀ X_c‖_F · ‖Y_cᵀ Y_c‖_F)        (feature form)
              = ⟨K, L⟩_F / (‖K‖_F · ‖L‖_F),  K = X_c X_cᵀ, L = Y_c Y_cᵀ   (Gram form)

CKA lies in [0, 1]. It is invariant to orthogonal transforms and isotropic scaling of either
representation and to constant offsets (so CKA(X, −X) = CKA(X, aX + b) = 1), but not to a
general invertible linear map. A representation that is constant over the inputs has no centred
variance; its CKA is undefined and returned as NaN.

`layer_activations` and `layer_grams` collect a model's representations with forward hooks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from fednot.errors import ConfigError
from fednot.types import StateDict

Form = Literal["auto", "feature", "gram"]

_DEGENERATE = 1e-24
"""A representation counts as constant when ‖X_c‖² ≤ this times ‖X‖² (float64 round-off)."""


def _check(x: Tensor, y: Tensor) -> None:
    if x.dim() < 1 or y.dim() < 1 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ConfigError(
            "Linear CKA needs two representations of the same n ≥ 2 inputs (dimension 0 = "
            f"samples), got shapes {tuple(x.shape)} and {tuple(y.shape)}."
        )


def centred(x: Tensor) -> Tensor:
    """Flatten ``x`` per sample (dimension 0) to float64 and centre its columns.

    A representation that is constant over the samples (up to round-off) becomes all zeros.
    """
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    out = flat - flat.mean(dim=0, keepdim=True)
    if float(out.square().sum()) <= _DEGENERATE * float(flat.square().sum()):
        return torch.zeros_like(out)
    return out


def centred_gram(x: Tensor, *, chunk: int = 4096) -> Tensor:
    """The n×n Gram matrix K = X_c X_cᵀ of the centred, flattened ``x``, in float64.

    Features are converted and centred ``chunk`` columns at a time, so a wide float32 ``x``
    (e.g. a convolution's output map) is never copied to float64 as a whole. A constant
    representation gives the zero matrix.
    """
    if x.dim() < 1 or x.shape[0] < 2:
        raise ConfigError(f"Expected activations of n ≥ 2 samples, got shape {tuple(x.shape)}.")
    flat = x.reshape(x.shape[0], -1)
    gram = torch.zeros(flat.shape[0], flat.shape[0], dtype=torch.float64)
    raw = 0.0
    for start in range(0, flat.shape[1], chunk):
        block = flat[:, start : start + chunk].to(torch.float64)
        raw += float(block.square().sum())
        block = block - block.mean(dim=0, keepdim=True)
        gram += block @ block.T
    if float(gram.trace()) <= _DEGENERATE * raw:  # trace(K) = ‖X_c‖²
        gram.zero_()
    return gram


def cka_from_grams(gram_x: Tensor, gram_y: Tensor) -> float:
    """⟨K, L⟩_F / (‖K‖_F ‖L‖_F) for centred Gram matrices K, L (NaN if either is zero)."""
    if gram_x.shape != gram_y.shape or gram_x.dim() != 2 or gram_x.shape[0] != gram_x.shape[1]:
        raise ConfigError(
            f"Expected two n×n Gram matrices of the same n, got {tuple(gram_x.shape)} and "
            f"{tuple(gram_y.shape)}."
        )
    k, m = gram_x.to(torch.float64), gram_y.to(torch.float64)
    norms = float(torch.linalg.matrix_norm(k)) * float(torch.linalg.matrix_norm(m))
    if norms == 0.0:
        return math.nan
    return float((k * m).sum()) / norms


def _feature_form(xc: Tensor, yc: Tensor) -> float:
    norms = float(torch.linalg.matrix_norm(xc.T @ xc)) * float(torch.linalg.matrix_norm(yc.T @ yc))
    if norms == 0.0:
        return math.nan
    return float(torch.linalg.matrix_norm(yc.T @ xc)) ** 2 / norms


def linear_cka(x: Tensor, y: Tensor, *, form: Form = "auto") -> float:
    """Linear CKA between two representations of the same inputs (see the module docstring).

    Args:
        x: activations of n inputs, shape (n, ...), flattened per sample.
        y: activations of the same n inputs, shape (n, ...).
        form: ``"feature"`` (p×q cross-covariances), ``"gram"`` (n×n Gram matrices), or
            ``"auto"``: the Gram form when p or q exceeds n, the feature form otherwise. Both
            give the same value up to round-off.

    Returns:
        CKA in [0, 1]; NaN when either representation is constant over the inputs.

    Raises:
        ConfigError: the shapes do not share n ≥ 2 samples, or ``form`` is unknown.
    """
    _check(x, y)
    if form not in ("auto", "feature", "gram"):
        raise ConfigError(f"Expected form 'auto', 'feature' or 'gram', got {form!r}.")
    xc, yc = centred(x), centred(y)
    n, p, q = xc.shape[0], xc.shape[1], yc.shape[1]
    if form == "gram" or (form == "auto" and max(p, q) > n):
        return cka_from_grams(xc @ xc.T, yc @ yc.T)
    return _feature_form(xc, yc)


# -- representations of a model, to compare with CKA ----------------------------------------


def _tensor(output: Any, name: str) -> Tensor:
    if isinstance(output, tuple | list) and output and isinstance(output[0], Tensor):
        output = output[0]  # e.g. nn.MultiheadAttention returns (output, weights)
    if not isinstance(output, Tensor):
        raise ConfigError(f"Module {name!r} returned {type(output).__name__}, not a tensor.")
    return output


@torch.no_grad()
def layer_activations(
    model: nn.Module,
    state: StateDict,
    batches: Iterable[Tensor],
    names: Sequence[str],
    *,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor]:
    """Outputs of the named modules of ``model`` with ``state`` on the input ``batches``.

    The model runs in eval mode. Each output is flattened per sample to (n, features), float32
    on the CPU. Keys come in the order the modules first produce output (computation order); a
    module called twice per forward keeps its last output.
    """
    model.load_state_dict(state)
    model.to(device).eval()
    modules = dict(model.named_modules())
    unknown = [name for name in names if name not in modules]
    if unknown:
        raise ConfigError(f"The model has no modules {unknown}.")
    batch: dict[str, Tensor] = {}
    parts: dict[str, list[Tensor]] = {}

    def hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            out = _tensor(output, name).detach()
            batch[name] = out.reshape(out.shape[0], -1).float().cpu()

        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in names]
    try:
        for inputs in batches:
            batch.clear()
            model(inputs.to(device))
            for name, out in batch.items():
                parts.setdefault(name, []).append(out)
    finally:
        for handle in handles:
            handle.remove()
    silent = sorted(set(names) - set(parts))
    if silent:
        raise ConfigError(f"Modules {silent} produced no output in the forward pass.")
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


def layer_grams(
    model: nn.Module,
    state: StateDict,
    batches: Iterable[Tensor],
    names: Sequence[str],
    *,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor]:
    """Centred n×n Gram matrices (float64) of the named modules' outputs, in computation order.

    Activations are converted one layer at a time, so only one layer is held in float64.
    """
    acts = layer_activations(model, state, batches, names, device=device)
    return {name: centred_gram(acts.pop(name)) for name in list(acts)}
