"""FCU: model-contrastive unlearning and frequency-guided fusion (Deng et al., MICCAI 2024)."""

from __future__ import annotations

import math

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.errors import ConfigError
from fednot.federation.costs import state_bytes
from fednot.models.registry import create_model
from fednot.seeding import SeedStreams
from fednot.testing import tiny_config, tiny_federation
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.fcu import (
    FCU,
    classifier_name,
    contrastive_loss,
    features,
    fft_flops,
    frequency_fuse,
    fuse_states,
    fusion_targets,
    low_freq_window,
    reshape_2d,
    restore_shape,
)
from fednot.unlearning.model_parts import ModelParts
from fednot.unlearning.registry import create_unlearner

CLIENT = ForgetRequest(clients=(0,))
SMALL: dict[str, dict[str, object]] = {
    "cnn": {"channels": (4, 8)},
    "mlp": {"hidden": (16, 8)},
    "resnet18": {"width": 2},
    "vit": {"dim": 8, "depth": 1, "heads": 2, "mlp_dim": 8},
}


def _context(
    model: str = "cnn", request: ForgetRequest = CLIENT
) -> tuple[UnlearnContext, StateDict]:
    """A context over a 3-client tiny federation, and a (random) global state."""
    federation = tiny_federation()
    split = Experiment(tiny_config(), 0, federation=federation).split(request)
    make = {"input_shape": federation.input_shape, "num_classes": 4, "options": SMALL[model]}
    net = create_model(model, **make)  # type: ignore[arg-type]
    state = create_model(model, generator=torch.Generator().manual_seed(1), **make).state_dict()  # type: ignore[arg-type]
    parts = ModelParts(net, state, name=model, options=SMALL[model])
    ctx = UnlearnContext.create(FCU(), split, parts, SeedStreams(0))
    return ctx, state


# -- pure functions ---------------------------------------------------------------------------


def test_reshape_2d_layout_and_round_trip() -> None:
    weight = torch.randn(5, 3, 2, 4, generator=torch.Generator().manual_seed(0))
    matrix = reshape_2d(weight)
    assert matrix.shape == (3 * 2, 4 * 5)  # (C·kh) × (kw·N)
    n, c, i, j = 4, 2, 1, 3
    assert matrix[c * 2 + i, j * 5 + n] == weight[n, c, i, j]
    assert torch.equal(restore_shape(matrix, weight.shape), weight)
    linear = torch.randn(3, 7)
    assert reshape_2d(linear) is linear and torch.equal(restore_shape(linear, (3, 7)), linear)
    with pytest.raises(ConfigError, match="2-D or 4-D"):
        reshape_2d(torch.zeros(3))


def test_low_freq_window_follows_the_code() -> None:
    assert low_freq_window(8, 12, 0.5) == (slice(2, 6), slice(3, 9))
    assert low_freq_window(7, 5, 0.7) == (slice(1, 5), slice(1, 3))  # ⌊7·.35⌋=2, ⌊5·.35⌋=1
    assert low_freq_window(4, 4, 0.0) == (slice(2, 2), slice(2, 2))


@pytest.mark.parametrize("source", ["unlearned", "original"])
@pytest.mark.parametrize("shape", [(6, 10), (4, 3, 3, 3)])
def test_fusing_a_weight_with_itself_is_the_identity(source: str, shape: tuple[int, ...]) -> None:
    weight = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    fused = frequency_fuse(weight, weight, 0.5, source)  # type: ignore[arg-type]
    assert fused.shape == weight.shape and fused.dtype == weight.dtype
    assert torch.allclose(fused, weight, atol=1e-6, rtol=0)


def _masks(h: int, w: int, low_freq: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Unshifted frequencies in the window with their mirror (inside), and outside with it."""
    window = torch.zeros(h, w, dtype=torch.bool)
    rows, cols = low_freq_window(h, w, low_freq)
    window[rows, cols] = True
    mask = torch.fft.ifftshift(window)
    mirror = mask[(-torch.arange(h)) % h][:, (-torch.arange(w)) % w]
    return mask & mirror, ~mask & ~mirror


@pytest.mark.parametrize("source", ["unlearned", "original"])
def test_low_frequencies_come_from_the_chosen_model(source: str) -> None:
    generator = torch.Generator().manual_seed(3)
    w_u, w_o = torch.randn(8, 12, generator=generator), torch.randn(8, 12, generator=generator)
    fused = frequency_fuse(w_u.double(), w_o.double(), 0.5, source)  # type: ignore[arg-type]
    inside, outside = _masks(8, 12, 0.5)
    assert inside.sum() == 3 * 5 and outside.sum() > 0
    low, high = (w_u, w_o) if source == "unlearned" else (w_o, w_u)
    amplitude = torch.fft.fft2(fused).abs()
    assert torch.allclose(amplitude[inside], torch.fft.fft2(low.double()).abs()[inside])
    assert torch.allclose(amplitude[outside], torch.fft.fft2(high.double()).abs()[outside])
    assert not torch.allclose(amplitude[inside], torch.fft.fft2(high.double()).abs()[inside])
    phase = torch.fft.fft2(fused).angle()[outside]  # the phase is always W_o's
    assert torch.allclose(phase, torch.fft.fft2(w_o.double()).angle()[outside])
    zero = frequency_fuse(w_u, w_o, 0.0)  # an empty window gives W_o back
    assert torch.allclose(zero, w_o, atol=1e-6, rtol=0)


def test_contrastive_loss_by_hand() -> None:
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z_o = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # cos 1, then cos 0
    z_d = torch.tensor([[0.0, 1.0], [0.0, 2.0]])  # cos 0, then cos 1
    # logits [2, 0] and [0, 2] at τ = 0.5, target index 1 (the downgraded model)
    expected = (math.log(1 + math.exp(2)) + math.log(1 + math.exp(-2))) / 2
    assert contrastive_loss(z, z_o, z_d, 0.5).item() == pytest.approx(expected, rel=1e-6)
    at_one = (math.log(1 + math.e) + math.log(1 + math.exp(-1))) / 2
    assert contrastive_loss(z, z_o, z_d, 1.0).item() == pytest.approx(at_one, rel=1e-6)


def test_fft_flops() -> None:
    assert fft_flops(8) == 5 * 8 * 3 and fft_flops(1) == 0


def test_fusion_reverts_everything_but_conv_and_classifier_weights() -> None:
    ctx, state = _context("cnn")
    targets = fusion_targets(ctx.model)
    assert targets == ("block1.conv.weight", "block2.conv.weight", "fc.weight")
    generator = torch.Generator().manual_seed(4)
    moved = {k: v + torch.randn(v.shape, generator=generator) for k, v in state.items()}
    fused = fuse_states(moved, state, targets, 1.0)  # block1.conv is 3×12: ρ=1 keeps a window
    assert set(fused) == set(state)
    for key in state:
        same = torch.equal(fused[key], state[key])
        assert same != (key in targets), key  # biases and norms revert; fused weights change


@pytest.mark.parametrize(
    ("model", "head", "width"),
    [("cnn", "fc", 8 * 2 * 2), ("mlp", "fc3", 8), ("resnet18", "fc", 16), ("vit", "heads.head", 8)],
)
def test_features_are_the_input_of_the_final_linear(model: str, head: str, width: int) -> None:
    net = create_model(model, input_shape=(1, 8, 8), num_classes=4, options=SMALL[model])
    assert classifier_name(net) == head
    assert fusion_targets(net)[-1] == f"{head}.weight"
    assert features(net.eval(), head, torch.zeros(3, 1, 8, 8)).shape == (3, width)


# -- the method -------------------------------------------------------------------------------


def test_options_are_validated_and_registered() -> None:
    with pytest.raises(ConfigError, match="Expected `iterations` to be a multiple"):
        FCU(iterations=25)
    with pytest.raises(ConfigError, match="Expected `low_freq` to be a float in \\[0, 1\\], got 2"):
        FCU(low_freq=2)
    with pytest.raises(ConfigError, match="`low_freq_from`"):
        FCU(low_freq_from="both")  # type: ignore[arg-type]
    method = create_unlearner("fcu", {"low_freq_from": "original", "betas": [0.5, 0.9]})
    assert isinstance(method, FCU) and method.low_freq_from == "original"
    assert method.title == "FCU" and method.requirements.target_participation
    assert FCU().low_freq_from == "unlearned" and FCU().iterations == 100


def test_zero_iterations_is_the_identity() -> None:
    ctx, state = _context()
    result = FCU(iterations=0).unlearn(state, ctx)
    assert all(torch.equal(result.state[k], state[k]) for k in state)
    assert ctx.costs.comm_bytes == 0


def test_step_reverts_untouched_tensors_and_counts_costs() -> None:
    ctx, state = _context("cnn")
    result = FCU(iterations=20, batch_size=16, lr=1e-2).unlearn(state, ctx)
    targets = result.notes["fused_parameters"]
    for key in set(state) - set(targets):
        assert torch.equal(result.state[key], state[key]), key  # biases and norms revert
    assert not torch.equal(result.state["block2.conv.weight"], state["block2.conv.weight"])
    # The loss acts on the classifier's input, so the classifier gets no gradient and its fusion
    # is a no-op (as in the official code); block1.conv (3×12 as a matrix) has an empty window.
    assert torch.equal(result.state["fc.weight"], state["fc.weight"])
    shape = (16, 1, 8, 8)  # full batches, cycling over D_u
    per_step = ctx.flops.train_step(shape) + 2 * ctx.flops.forward(shape)
    ffts = sum(3 * fft_flops(state[k].numel()) for k in targets)
    assert ctx.costs.flops == 20 * per_step + 2 * ffts and ffts > 0
    assert ctx.costs.comm_bytes == 2 * state_bytes(state)  # θ_o down, the result up
    assert result.notes["fusions"] == 2


def test_partial_forgetting_runs_on_the_forget_samples() -> None:
    ctx, state = _context("mlp", ForgetRequest(clients=(0,), classes=(1,)))
    FCU(iterations=10).unlearn(state, ctx)
    assert ctx.costs.flops > 0


def test_end_to_end_through_the_experiment() -> None:
    exp = Experiment(tiny_config(), 0, federation=tiny_federation())
    trained = exp.pretrain()
    outcome = exp.unlearn(trained, CLIENT, FCU(iterations=20))
    assert outcome.step_costs.comm_bytes == 2 * state_bytes(trained.state)
    assert outcome.notes["classifier"] == "fc2" and outcome.notes["fusions"] == 2
    assert outcome.log.rounds and all(r.clients == (1, 2) for r in outcome.log.rounds)
    again = exp.unlearn(trained, CLIENT, FCU(iterations=20))
    assert all(torch.equal(outcome.state[k], again.state[k]) for k in outcome.state)
