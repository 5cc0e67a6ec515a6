"""FCU: federated client unlearning by model-contrastive unlearning and frequency fusion.

Z. Deng, L. Luo, H. Chen, "Enable the Right to be Forgotten with Federated Client Unlearning in
Medical Imaging", MICCAI 2024 (arXiv 2407.02356). Official code: ``dzp2095/FCU``
(``src/modules/trainer.py``, ``src/model/net.py``, ``src/fl/server.py``, ``configs/*``).

The target alone unlearns, on its forget data D_u (docs/methods.md, "FCU"):

- *Model-contrastive unlearning (MCU).* Features f(x) are the input to the model's final
  ``Linear``. Each step pulls f_θ(x) towards f_{θ_d}(x) of a "downgraded" model that never saw
  the FL data and pushes it from f_{θ_o}(x) of the original global model: cross-entropy over
  [cos(z, z_o)/τ, cos(z, z_d)/τ] with target index 1 (`contrastive_loss`); no task loss.
- *Frequency-guided memory preservation (FGMP).* After every ``fusion_interval`` steps, each
  conv weight and the classifier weight is rebuilt from FFT amplitudes: θ_o's everywhere except a
  centred low-frequency window taken from the unlearned weight, with θ_o's phase
  (`frequency_fuse`); every other tensor (biases, norms, buffers) reverts to θ_o. The loss acts
  on the classifier's input, so the classifier weight gets no gradient and its fusion returns
  θ_o's (as in the code); a weight whose matrix is too small for the window (fewer than 2/ρ rows
  or columns) also keeps θ_o's.

Defaults are the official code's ICH configuration: Adam (lr 1e-5, betas (0.9, 0.9999), weight
decay 5e-4), batch 64, 100 iterations cycling over D_u, a fusion every 10, τ = 0.5 (the code's
factor 2), ρ = ``low_freq`` = 0.5. The code comment says FGMP keeps "the low frequency part of
the pretrained model", but the code keeps the unlearned model's: ``low_freq_from="unlearned"``
follows the code, ``"original"`` swaps the roles. Ours: θ_d is a fresh seeded random
initialisation of the architecture, rebuilt at every fusion interval (the code rebuilds an
ImageNet backbone with a random head; our models train from scratch); θ_o and θ_d run in eval
mode (the code leaves θ_o in train mode); several targets act as one participant holding the
union D_u, each charged θ_o down and the result up. Post-training is the engine's recovery.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor, nn

from fednot.errors import ConfigError, UnsupportedModelError
from fednot.federation.aggregate import clone_state
from fednot.federation.costs import state_bytes
from fednot.models.layers import layer_graph
from fednot.types import StateDict
from fednot.unlearning.base import FEDERATED_SCENARIOS, Requirements, Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.options import (
    expect,
    float_in,
    non_negative_float,
    non_negative_int,
    one_of,
    positive_float,
    positive_int,
)
from fednot.unlearning.registry import register_unlearner
from fednot.unlearning.space import IntRange, Range

LowFreqFrom = Literal["unlearned", "original"]


def reshape_2d(weight: Tensor) -> Tensor:
    """A weight as a matrix: conv (N, C, kh, kw) → (C·kh, kw·N); a 2-D weight as is."""
    if weight.dim() == 2:
        return weight
    if weight.dim() == 4:
        n, c, kh, kw = weight.shape
        return weight.permute(1, 2, 3, 0).reshape(c * kh, kw * n)
    raise ConfigError(f"Expected a 2-D or 4-D weight, got shape {tuple(weight.shape)}.")


def restore_shape(matrix: Tensor, shape: torch.Size | tuple[int, ...]) -> Tensor:
    """The inverse of `reshape_2d` for a weight of ``shape``."""
    if len(shape) == 2:
        return matrix.reshape(shape)
    n, c, kh, kw = shape
    return matrix.reshape(c, kh, kw, n).permute(3, 0, 1, 2)


def low_freq_window(h: int, w: int, low_freq: float) -> tuple[slice, slice]:
    """The centred window of a shifted spectrum, half-widths ⌊h·ρ/2⌋ × ⌊w·ρ/2⌋ (as the code)."""
    bh, bw = math.floor(h * low_freq / 2), math.floor(w * low_freq / 2)
    ch, cw = h // 2, w // 2
    return slice(ch - bh, ch + bh), slice(cw - bw, cw + bw)


def frequency_fuse(
    w_u: Tensor, w_o: Tensor, low_freq: float, low_freq_from: LowFreqFrom = "unlearned"
) -> Tensor:
    """FGMP for one weight: amplitudes of W_o outside the low-frequency window, phase of W_o.

    With ``low_freq_from="unlearned"`` the window's amplitudes come from W_u (the official
    code); with ``"original"`` the roles swap (W_u's amplitudes outside, W_o's inside). The phase
    is always W_o's. Computed in float64; returned in W_o's dtype and shape.
    """
    spectrum_u = torch.fft.fft2(reshape_2d(w_u).double())
    spectrum_o = torch.fft.fft2(reshape_2d(w_o).double())
    inner, outer = (
        (spectrum_u, spectrum_o) if low_freq_from == "unlearned" else (spectrum_o, spectrum_u)
    )
    amplitude = torch.fft.fftshift(outer.abs())
    rows, cols = low_freq_window(amplitude.shape[0], amplitude.shape[1], low_freq)
    amplitude[rows, cols] = torch.fft.fftshift(inner.abs())[rows, cols]
    fused = torch.polar(torch.fft.ifftshift(amplitude), spectrum_o.angle())
    matrix = torch.fft.ifft2(fused).real
    return restore_shape(matrix, w_o.shape).to(w_o.dtype).contiguous()


def fuse_states(
    unlearned: StateDict,
    original: StateDict,
    targets: tuple[str, ...],
    low_freq: float,
    low_freq_from: LowFreqFrom = "unlearned",
) -> StateDict:
    """A copy of ``original`` whose ``targets`` weights are frequency-fused with ``unlearned``."""
    fused = clone_state(original)
    for key in targets:
        fused[key] = frequency_fuse(unlearned[key].cpu(), fused[key], low_freq, low_freq_from)
    return fused


def contrastive_loss(z: Tensor, z_o: Tensor, z_d: Tensor, temperature: float = 0.5) -> Tensor:
    """MCU loss: CE over [cos(z, z_o)/τ, cos(z, z_d)/τ] with target 1 (pull to z_d), batch mean."""
    sims = (
        torch.stack(
            [
                nn.functional.cosine_similarity(z, z_o, dim=-1),
                nn.functional.cosine_similarity(z, z_d, dim=-1),
            ],
            dim=1,
        )
        / temperature
    )
    target = torch.ones(len(z), dtype=torch.long, device=z.device)
    return nn.functional.cross_entropy(sims, target)


def fft_flops(numel: int) -> int:
    """FLOPs of one FFT over ``numel`` points, 5·N·log₂N (ours).

    The counting convention is in docs/metrics.md, "Computation".
    """
    return round(5 * numel * math.log2(numel)) if numel > 1 else 0


def classifier_name(model: nn.Module) -> str:
    """The model's final ``Linear`` (the output layer of its graph, else the last registered)."""
    graph = layer_graph(model)
    modules = dict(model.named_modules())
    outputs = [
        layer.name
        for layer in graph.layers
        if graph.is_output(layer.name) and isinstance(modules.get(layer.name), nn.Linear)
    ]
    if len(outputs) == 1:
        return outputs[0]
    linears: list[str] = [name for name, module in modules.items() if isinstance(module, nn.Linear)]
    if not linears:
        raise UnsupportedModelError(
            f"FCU needs a final nn.Linear classifier (its input is the feature vector); "
            f"{type(model).__name__} has none."
        )
    return linears[-1]


def fusion_targets(model: nn.Module, head: str | None = None) -> tuple[str, ...]:
    """Weights FGMP fuses: every 2-D convolution's and the classifier's (``head``)."""
    head = head or classifier_name(model)
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return (*(f"{name}.weight" for name in convs), f"{head}.weight")


def features(model: nn.Module, head: str, x: Tensor) -> Tensor:
    """The input of ``model``'s layer ``head`` on ``x`` (a forward pre-hook)."""
    captured: list[Tensor] = []
    hook = model.get_submodule(head).register_forward_pre_hook(
        lambda _module, inputs: captured.append(inputs[0])
    )
    try:
        model(x)
    finally:
        hook.remove()
    return captured[-1]


def cycle_batches(size: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless full batches of positions from back-to-back shuffles of ``range(size)``.

    Batches cross epoch boundaries, like the code's infinite training sampler.
    """
    buffer = torch.empty(0, dtype=torch.int64)
    while True:
        while len(buffer) < batch_size:
            buffer = torch.cat([buffer, torch.randperm(size, generator=generator)])
        yield buffer[:batch_size]
        buffer = buffer[batch_size:]


@register_unlearner
class FCU(Unlearner):
    """The target unlearns alone by model-contrastive learning, with frequency-guided fusion."""

    name = "fcu"
    title = "FCU"
    requirements = Requirements(forget_data=True, target_participation=True)
    scenarios = FEDERATED_SCENARIOS
    scenario_note = "a federated method: the target unlearns inside a federation"
    # iterations are optimisation steps (cycling over D_u): the range covers the published 100
    search_space = {
        "iterations": IntRange(10, 500, step=10),
        "lr": Range(1e-6, 1e-3, log=True),
    }

    def __init__(
        self,
        *,
        iterations: int = 100,
        fusion_interval: int = 10,
        batch_size: int = 64,
        lr: float = 1e-5,
        betas: tuple[float, float] = (0.9, 0.9999),
        weight_decay: float = 5e-4,
        temperature: float = 0.5,
        low_freq: float = 0.5,
        low_freq_from: LowFreqFrom = "unlearned",
    ) -> None:
        self.iterations = non_negative_int(iterations, "iterations")
        self.fusion_interval = positive_int(fusion_interval, "fusion_interval")
        multiple = f"a multiple of fusion_interval={fusion_interval}"
        expect(iterations % fusion_interval == 0, "iterations", multiple, iterations)
        self.batch_size = positive_int(batch_size, "batch_size")
        self.lr = positive_float(lr, "lr")
        expect(len(betas) == 2, "betas", "two floats in [0, 1)", betas)
        self.betas = (
            float_in(betas[0], "betas", 0, 1, high_open=True),
            float_in(betas[1], "betas", 0, 1, high_open=True),
        )
        self.weight_decay = non_negative_float(weight_decay, "weight_decay")
        self.temperature = positive_float(temperature, "temperature")
        self.low_freq = float_in(low_freq, "low_freq", 0, 1)
        self.low_freq_from: LowFreqFrom = one_of(
            low_freq_from, "low_freq_from", ("unlearned", "original")
        )

    def validate(self, model: nn.Module) -> None:
        """Check that ``model`` has a final Linear whose input serves as the feature."""
        fusion_targets(model)

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        """Run MCU on D_u with a fusion after every block; recovery follows in the engine."""
        original = clone_state(state)
        fusions = self.iterations // self.fusion_interval
        if fusions == 0:
            return UnlearnResult(original, notes={"fusions": 0})
        if len(ctx.forget_data) == 0:
            raise ConfigError("FCU unlearns on the forget data, but the request selects none.")
        head = classifier_name(ctx.model)
        targets = fusion_targets(ctx.model, head)
        model = ctx.model
        model.load_state_dict(original)
        model.to(ctx.device)
        reference, downgraded = copy.deepcopy(model).eval(), copy.deepcopy(model).eval()
        optimizer = torch.optim.Adam(
            model.parameters(), lr=self.lr, betas=self.betas, weight_decay=self.weight_decay
        )
        generator = ctx.generator("mcu")
        batches = cycle_batches(len(ctx.forget_data), self.batch_size, generator)
        fused = original
        for block in range(fusions):
            downgraded.load_state_dict(ctx.fresh_state("downgraded", block))
            for _ in range(self.fusion_interval):
                x = ctx.preprocess(ctx.forget_data.fetch(next(batches))[0], generator)
                self._step(model, (reference, downgraded), head, x.to(ctx.device), optimizer)
                shape = tuple(x.shape)
                ctx.add_costs(flops=ctx.flops.train_step(shape) + 2 * ctx.flops.forward(shape))
            unlearned = clone_state(model.state_dict())
            fused = fuse_states(unlearned, original, targets, self.low_freq, self.low_freq_from)
            model.load_state_dict(fused)  # in place: Adam's moments carry over, as in the code
            ctx.add_costs(flops=sum(3 * fft_flops(fused[k].numel()) for k in targets))
        ctx.transfer(original, 2 * len(ctx.request.clients))  # θ_o down, the result up
        notes: dict[str, object] = {"fusions": fusions, "classifier": head}
        notes["fused_parameters"] = list(targets)
        # θ_o and θ_d (docs/metrics.md, "Storage")
        notes["working_bytes"] = 2 * state_bytes(original)
        return UnlearnResult(fused, notes=notes)

    def _step(
        self,
        model: nn.Module,
        anchors: tuple[nn.Module, nn.Module],
        head: str,
        x: Tensor,
        optimizer: torch.optim.Optimizer,
    ) -> None:
        """One MCU step: pull f_θ(x) to the downgraded features, push it from the original's."""
        model.train()
        with torch.no_grad():
            z_o, z_d = [features(anchor, head, x) for anchor in anchors]
        loss = contrastive_loss(features(model, head, x), z_o, z_d, self.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
