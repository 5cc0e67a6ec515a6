"""Perturbations of chosen layers, the Perturb method, and their ablation.

The perturbations are described in docs/not.md, "Perturbations".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from fednot.analysis.common import Study
from fednot.analysis.perturbation import ablate_perturbation, gap_curve, mean_band, parse_kinds
from fednot.benchmark.experiment import Experiment
from fednot.config import ModelConfig, UnlearnConfig
from fednot.errors import ConfigError
from fednot.models.registry import create_model
from fednot.testing import check_unlearner, tiny_config, tiny_federation
from fednot.types import StateDict
from fednot.unlearning.negation import negate
from fednot.unlearning.perturbations import (
    PERTURBATIONS,
    Perturb,
    add_noise,
    flip_kernels,
    perturb,
    reinitialise,
    rotate_kernels,
)
from fednot.unlearning.registry import create_unlearner

CONV = ("block1.conv.weight", "block1.conv.bias")


def _cnn() -> tuple[nn.Module, StateDict]:
    model = create_model(
        "cnn", input_shape=(1, 28, 28), num_classes=10, generator=torch.Generator().manual_seed(0)
    )
    return model, model.state_dict()


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- the pure functions -------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(PERTURBATIONS))
@pytest.mark.parametrize("layer", ["block1.conv", "block2.conv"])
def test_each_perturbation_changes_exactly_the_chosen_layer(kind: str, layer: str) -> None:
    model, state = _cnn()
    out = perturb(state, model, layer, kind, generator=_gen(), negate_bias=True)
    assert list(out) == list(state) and out is not state
    weight, bias = f"{layer}.weight", f"{layer}.bias"
    changed = {k for k in state if not torch.equal(out[k], state[k])}
    untouched = {k for k in state if out[k] is state[k]}
    expected = {"none": set(), "flip": {weight}, "rot90": {weight}, "rot180": {weight}}
    assert changed == expected.get(kind, {weight, bias})
    assert untouched == set(state) - changed  # every other tensor is the very same object
    for key in changed:
        assert out[key].shape == state[key].shape and out[key].dtype == state[key].dtype


def test_flip_and_rotation_by_hand() -> None:
    kernel = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    state = {"conv.weight": kernel, "conv.bias": torch.tensor([5.0])}
    flipped = flip_kernels(state, ["conv.weight", "conv.bias"])
    assert flipped["conv.weight"].flatten().tolist() == [2.0, 1.0, 4.0, 3.0]  # left-right
    assert flipped["conv.bias"] is state["conv.bias"]  # biases unchanged
    turned = rotate_kernels(state, ["conv.weight"], quarter_turns=1)
    assert turned["conv.weight"].flatten().tolist() == [2.0, 4.0, 1.0, 3.0]  # 90° anticlockwise
    half = rotate_kernels(state, ["conv.weight"], quarter_turns=2)
    assert half["conv.weight"].flatten().tolist() == [4.0, 3.0, 2.0, 1.0]


def test_flips_twice_and_rotations_four_times_are_the_identity() -> None:
    model, state = _cnn()
    twice = flip_kernels(flip_kernels(state, CONV), CONV)
    out = state
    for _ in range(4):
        out = perturb(out, model, "first", "rot90", generator=_gen())
    two_quarters = rotate_kernels(
        rotate_kernels(state, CONV, quarter_turns=1), CONV, quarter_turns=1
    )
    half = perturb(state, model, "first", "rot180", generator=_gen())
    negated = perturb(
        perturb(state, model, "first", "negate", generator=_gen()),
        model,
        "first",
        "negate",
        generator=_gen(),
    )
    for key in state:
        assert torch.equal(twice[key], state[key])
        assert torch.equal(out[key], state[key])
        assert torch.equal(negated[key], state[key])
        assert torch.equal(half[key], two_quarters[key])  # rot180 = rot90 twice
    assert not torch.equal(half[CONV[0]], state[CONV[0]])


def test_kernel_perturbations_refuse_what_is_not_a_square_conv_kernel() -> None:
    mlp = create_model("mlp", input_shape=(1, 8, 8), num_classes=4)
    for kind in ("flip", "rot90", "rot180"):
        with pytest.raises(ConfigError, match="convolution kernels; fc1 is not a convolution"):
            perturb(mlp.state_dict(), mlp, "first", kind, generator=_gen())
    with pytest.raises(ConfigError, match="fc1.weight has shape \\(200, 64\\), not a conv weight"):
        flip_kernels({"fc1.weight": torch.ones(200, 64)}, ["fc1.weight"])
    wide = {"w": torch.ones(2, 1, 3, 5)}
    with pytest.raises(ConfigError, match="square"):
        rotate_kernels(wide, ["w"], quarter_turns=1)
    assert flip_kernels(wide, ["w"])["w"].shape == (2, 1, 3, 5)
    with pytest.raises(ConfigError, match="Unknown perturbation 'twist'"):
        perturb(mlp.state_dict(), mlp, "first", "twist", generator=_gen())


def test_noise_has_negations_displacement_norm() -> None:
    model, state = _cnn()
    out = perturb(state, model, "first", "noise", generator=_gen(), negate_bias=True)
    for key in CONV:
        step = (out[key] - state[key]).double().norm()
        # ‖−θ − θ‖ = 2‖θ‖: noise moves the weights exactly as far as negation does
        assert math.isclose(float(step), 2 * float(state[key].double().norm()), rel_tol=1e-5)
    again = perturb(state, model, "first", "noise", generator=_gen())
    other = perturb(state, model, "first", "noise", generator=_gen(2))
    assert torch.equal(again[CONV[0]], out[CONV[0]])
    assert not torch.equal(other[CONV[0]], out[CONV[0]])


def test_noise_scaled_by_the_std_follows_the_spec_formula() -> None:
    theta = torch.tensor([1.0, 2.0, 3.0, 6.0])  # std (n − 1) = sqrt(14/3)
    out = add_noise({"t": theta}, ["t"], generator=_gen(), scale=0.5)["t"]
    eps = torch.randn(4, generator=_gen(), dtype=torch.float64)
    expected = theta.double() + 0.5 * math.sqrt(14 / 3) * eps
    assert torch.allclose(out.double(), expected, atol=1e-6)
    assert torch.equal(add_noise({"t": theta}, ["t"], generator=_gen(), scale=0.0)["t"], theta)


def test_reinit_is_seeded_and_follows_the_modules_own_initialiser() -> None:
    model, state = _cnn()
    global_rng = torch.get_rng_state()
    first = reinitialise(state, CONV, model, generator=_gen(5))
    assert torch.equal(torch.get_rng_state(), global_rng)  # the global RNG is untouched
    same = reinitialise(state, CONV, model, generator=_gen(5))
    other = reinitialise(state, CONV, model, generator=_gen(6))
    bound = 1 / math.sqrt(1 * 3 * 3)  # Conv2d's kaiming-uniform (a = √5) bound: 1/√fan_in
    for key in CONV:
        assert torch.equal(first[key], same[key])
        assert not torch.equal(first[key], other[key])
        assert not torch.equal(first[key], state[key])
        assert first[key].abs().max() <= bound
    assert first[CONV[0]].abs().max() > 0.9 * bound  # uniform on [−bound, bound]: fills it
    mlp = create_model("mlp", input_shape=(1, 8, 8), num_classes=4)
    fc1 = reinitialise(mlp.state_dict(), ["fc1.weight"], mlp, generator=_gen())["fc1.weight"]
    assert fc1.abs().max() <= 1 / math.sqrt(64)


class _RawParameter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))
        self.fc = nn.Linear(3, 2)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc(x * self.scale)
        return out


def test_a_raw_parameter_has_no_initialiser_and_no_kernel() -> None:
    model = _RawParameter()
    with pytest.raises(ConfigError, match="no default initialiser"):
        perturb(model.state_dict(), model, "scale", "reinit", generator=_gen())
    with pytest.raises(ConfigError, match="scale is not a convolution"):
        perturb(model.state_dict(), model, "scale", "flip", generator=_gen())


def test_negate_is_the_negation_of_not() -> None:
    model, state = _cnn()
    out = perturb(state, model, "first", "negate", generator=_gen(), negate_bias=False)
    expected = negate(state, [CONV[0]])
    assert all(torch.equal(out[k], expected[k]) for k in state)


# -- the method ---------------------------------------------------------------------------


def test_perturb_is_registered_and_validates_its_options() -> None:
    method = create_unlearner("perturb", {"kind": "flip", "layers": ["block2.conv"]})
    assert isinstance(method, Perturb) and method.layers == ("block2.conv",)
    assert method.options()["kind"] == "flip"
    with pytest.raises(ConfigError, match="kind"):
        create_unlearner("perturb", {"kind": "twist"})
    with pytest.raises(ConfigError, match="convolution kernels"):
        Perturb(kind="rot90").validate(create_model("mlp", input_shape=(1, 8, 8), num_classes=4))


@pytest.mark.parametrize("kind", ["noise", "reinit"])
def test_perturb_conforms(kind: str) -> None:
    check_unlearner(Perturb(kind=kind))  # type: ignore[arg-type]


def test_perturb_in_the_engine_records_its_kind() -> None:
    config = tiny_config(unlearn=UnlearnConfig(recovery_rounds=0))
    exp = Experiment(config, seed=0, federation=tiny_federation())
    trained = exp.pretrain()
    outcome = exp.unlearn(trained, exp.scenario.request, Perturb(kind="negate"))
    expected = negate(trained.state, ["fc1.weight"])  # NoT's default: the weights only
    assert all(torch.equal(outcome.state[k], expected[k]) for k in expected)
    assert outcome.notes["kind"] == "negate" and outcome.notes["perturbed_layers"] == ["fc1"]


# -- the ablation -------------------------------------------------------------------------


def test_the_curve_helpers_by_hand() -> None:
    reference = {"retain_acc": 90.0, "forget_acc": 10.0, "test_acc": 80.0, "mia": 50.0}
    points = [
        (0, {"retain_acc": 50.0, "forget_acc": 30.0, "test_acc": 60.0, "mia": 70.0}),
        (2, {"retain_acc": 90.0, "forget_acc": 14.0, "test_acc": 80.0, "mia": 50.0}),
        (4, {"retain_acc": 90.0, "forget_acc": 10.0}),  # incomplete: left out
    ]
    assert gap_curve(points, reference) == [(0, 25.0), (2, 1.0)]
    rounds, mean, half = mean_band([[(0, 1.0), (2, 3.0)], [(0, 3.0), (2, 5.0), (4, 9.0)]])
    # two seeds: sd √2, standard error 1, so the 95 % half-width is t(0.975, 1 df) = 12.706
    assert rounds == [0, 2] and mean == [2.0, 4.0] and half == pytest.approx([12.7062047] * 2)
    assert parse_kinds(" negate, none,negate") == ("negate", "none")
    with pytest.raises(ConfigError, match="Known: negate"):
        parse_kinds("negate,twist")


def test_ablation_on_an_mlp_skips_the_kernel_perturbations(tmp_path: Path) -> None:
    config = tiny_config(unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=2))
    study = Study(config, tmp_path, federation=tiny_federation())
    markdown = ablate_perturbation(study)
    data = json.loads((tmp_path / "ablate_perturbation.json").read_text())
    assert set(data["skipped"]) == {"flip", "rot90"}
    assert "convolution kernels" in data["skipped"]["flip"]
    assert list(data["runs"]) == ["negate", "noise", "reinit", "none"]
    assert data["layers"] == ["fc1"] and data["curve_every"] == 1
    run = data["runs"]["negate"][0]
    assert [r for r, _ in run["gap_curve"]] == [0, 1, 2] and run["rounds"] == 2
    text = markdown.read_text()
    assert "![" in text and "(ablate_perturbation.png)" in text
    assert "Not applicable" in text and "`flip`" in text and "`rot90`" in text
    assert (tmp_path / "ablate_perturbation.png").stat().st_size > 10_000


def test_ablation_on_a_cnn_perturbs_the_layer_asked_for(tmp_path: Path) -> None:
    config = tiny_config(
        model=ModelConfig(name="cnn", options={"channels": (4, 8)}),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=1),
    )
    options = {"kinds": "flip,rot180", "layers": "block2.conv"}
    study = Study(config, tmp_path, federation=tiny_federation(), options=options)
    ablate_perturbation(study)
    data = json.loads((tmp_path / "ablate_perturbation.json").read_text())
    assert data["skipped"] == {} and list(data["runs"]) == ["flip", "rot180"]
    assert data["layers"] == ["block2.conv"]
    assert data["runs"]["flip"][0]["notes"]["perturbed_parameters"] == ["block2.conv.weight"]
