"""Linear CKA (docs/metrics.md, "CKA") and `fednot analyze cka` (docs/not.md, "CKA analysis")."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from fednot.analysis.cka import ROWS, analyze_cka, compare, control_pair, probe_layers
from fednot.analysis.common import Study
from fednot.errors import ConfigError
from fednot.metrics.cka import (
    centred,
    centred_gram,
    cka_from_grams,
    layer_activations,
    layer_grams,
    linear_cka,
)
from fednot.models.registry import create_model
from fednot.testing import tiny_config, tiny_federation
from fednot.unlearning.negation import negate

FORMS = ("feature", "gram")


def _randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- the metric ------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_hand_computed_value(form: str) -> None:
    # x_c = (-1, 0, 1), y_c = (2, -1, -1)/3: CKA = (x_c·y_c)² / (‖x_c‖² ‖y_c‖²) = 1 / (2 · 2/3)
    x = torch.tensor([[1.0], [2.0], [3.0]])
    y = torch.tensor([[1.0], [0.0], [0.0]])
    assert linear_cka(x, y, form=form) == pytest.approx(0.75, abs=1e-12)  # type: ignore[arg-type]


def test_gram_form_by_hand() -> None:
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    m = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    # <K, M> = 2, ‖K‖ = √2, ‖M‖ = 2
    assert cka_from_grams(k, m) == pytest.approx(2 / (math.sqrt(2) * 2))


@pytest.mark.parametrize("shape", [(50, 8), (20, 3, 4, 4)])
@pytest.mark.parametrize("form", [*FORMS, "auto"])
def test_self_similarity_is_one(shape: tuple[int, ...], form: str) -> None:
    x = _randn(*shape)
    assert linear_cka(x, x, form=form) == pytest.approx(1.0, abs=1e-12)  # type: ignore[arg-type]


@pytest.mark.parametrize("form", FORMS)
def test_invariant_to_orthogonal_transforms(form: str) -> None:
    x = _randn(60, 10)
    q, _ = torch.linalg.qr(_randn(10, 10, seed=1))
    assert torch.allclose(q.T @ q, torch.eye(10, dtype=torch.float64), atol=1e-12)
    assert linear_cka(x, x @ q, form=form) == pytest.approx(1.0, abs=1e-12)  # type: ignore[arg-type]


@pytest.mark.parametrize("form", FORMS)
def test_invariant_to_isotropic_scaling_offset_and_sign(form: str) -> None:
    x = _randn(40, 6)
    offset = _randn(1, 6, seed=2) * 100
    assert linear_cka(x, 3.7 * x + offset, form=form) == pytest.approx(1.0, abs=1e-12)  # type: ignore[arg-type]
    assert linear_cka(x, -x, form=form) == pytest.approx(1.0, abs=1e-12)  # type: ignore[arg-type]


def test_symmetric() -> None:
    x, y = _randn(30, 5), _randn(30, 9, seed=1) + _randn(30, 1, seed=2)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-14)
    assert 0.0 < linear_cka(x, y) < 1.0


def test_not_invariant_to_a_general_invertible_map() -> None:
    x = _randn(2000, 5)
    a = torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0, 20.0], dtype=torch.float64))
    assert abs(float(torch.linalg.det(a))) > 0
    # for isotropic X: ‖A‖²/(√p ‖AᵀA‖) = 404 / (√5 · √160004) ≈ 0.45
    assert linear_cka(x, x @ a) == pytest.approx(0.45, abs=0.03)


def test_independent_features_are_near_zero() -> None:
    # E[CKA] ≈ √(pq)/n = 0.002 for independent Gaussian features
    assert linear_cka(_randn(4000, 8), _randn(4000, 8, seed=1)) < 0.01
    assert linear_cka(_randn(10, 8), _randn(10, 8, seed=1)) > 0.1  # small n: biased upwards


@pytest.mark.parametrize("q", [7, 90])
def test_gram_and_feature_forms_agree(q: int) -> None:
    x, y = _randn(50, 20), _randn(50, q, seed=1) + _randn(50, 20, seed=0)[:, :1]
    gram = linear_cka(x, y, form="gram")
    assert gram == pytest.approx(linear_cka(x, y, form="feature"), abs=1e-12)
    assert gram == pytest.approx(linear_cka(x, y), abs=1e-12)


def test_chunked_gram_equals_direct_product() -> None:
    x = _randn(12, 2, 5).float()
    xc = centred(x)
    assert torch.allclose(centred_gram(x, chunk=3), xc @ xc.T, atol=1e-12)
    assert centred_gram(x).dtype == torch.float64


def test_float32_input_is_computed_in_float64() -> None:
    x, y = _randn(30, 4), _randn(30, 4, seed=1)
    assert linear_cka(x.float(), y.float()) == pytest.approx(
        linear_cka(x.float().double(), y.float().double()), abs=1e-14
    )


def test_constant_representation_is_undefined() -> None:
    x = _randn(10, 3)
    assert math.isnan(linear_cka(x, torch.full((10, 4), 0.1)))
    assert math.isnan(cka_from_grams(centred_gram(torch.full((10, 4), 0.1)), centred_gram(x)))


@pytest.mark.parametrize(
    ("x", "y"), [(torch.zeros(5, 3), torch.zeros(6, 3)), (torch.zeros(1, 3), torch.zeros(1, 3))]
)
def test_shapes_are_checked(x: Tensor, y: Tensor) -> None:
    with pytest.raises(ConfigError, match=rf"{tuple(x.shape)}.*{tuple(y.shape)}"):
        linear_cka(x, y)


def test_unknown_form_is_refused() -> None:
    with pytest.raises(ConfigError, match="form"):
        linear_cka(_randn(4, 2), _randn(4, 2), form="cosine")  # type: ignore[arg-type]


@pytest.mark.parametrize("negate_bias", [True, False])
@pytest.mark.parametrize(
    ("layer", "shape"), [(nn.Linear(6, 4), (50, 6)), (nn.Conv2d(3, 5, 3), (20, 3, 6, 6))]
)
def test_negated_layer_pre_activation_has_cka_one(
    layer: nn.Module, shape: tuple[int, ...], negate_bias: bool
) -> None:
    # docs/not.md, "Weights or weights and bias": weight and bias give Y → −Y; the weight alone
    # gives −Y + 2b, an offset
    x = _randn(*shape).float()
    state = layer.state_dict()
    targets = ["weight", "bias"] if negate_bias else ["weight"]
    with torch.no_grad():
        y = layer(x)
        layer.load_state_dict(negate(state, targets))
        y_neg = layer(x)
    if negate_bias:
        assert torch.equal(y_neg, -y)
    assert linear_cka(y, y_neg) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(torch.relu(y), torch.relu(y_neg)) < 0.9  # the non-linearity tells them apart


# -- representations and the analysis ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "options", "negated", "expected"),
    [
        ("mlp", (1, 8, 8), {"hidden": (16,)}, ["fc1"], ("fc1", "fc2")),
        (
            "cnn",
            (1, 8, 8),
            {"channels": (4, 4)},
            ["block1.conv"],
            ("block1.conv", "block1", "block2", "fc"),
        ),
        (
            "resnet18",
            (1, 8, 8),
            {"width": 4},
            ["conv1"],
            ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"),
        ),
        (
            "vit",
            (3, 8, 8),
            {"dim": 8, "depth": 1, "heads": 2, "mlp_dim": 8},
            ["conv_proj", "class_token"],
            ("conv_proj", "encoder", "heads"),
        ),
    ],
)
def test_probe_layers(
    name: str,
    shape: tuple[int, int, int],
    options: dict[str, object],
    negated: list[str],
    expected: tuple[str, ...],
) -> None:
    model = create_model(name, input_shape=shape, num_classes=3, options=options)
    assert probe_layers(model, negated) == expected
    acts = layer_activations(model, model.state_dict(), [torch.randn(5, *shape)], expected[::-1])
    assert tuple(acts) == expected  # computation order, whatever order they are asked in
    assert all(a.shape[0] == 5 and a.dim() == 2 for a in acts.values())


def test_layer_activations_collect_every_batch() -> None:
    model = create_model("mlp", input_shape=(1, 4, 4), num_classes=3, options={"hidden": (6,)})
    x = torch.randn(10, 1, 4, 4)
    acts = layer_activations(model, model.state_dict(), [x[:4], x[4:]], ["fc1", "fc2"])
    assert acts["fc1"].shape == (10, 6)
    with torch.no_grad():
        assert torch.allclose(acts["fc2"], model(x))  # the classifier's output = the logits
    grams = layer_grams(model, model.state_dict(), [x], ["fc2"])
    assert grams["fc2"].shape == (10, 10) and grams["fc2"].dtype == torch.float64
    with pytest.raises(ConfigError, match="no modules"):
        layer_activations(model, model.state_dict(), [x], ["fc9"])


def test_control_pair_differs_only_in_the_negated_tensors() -> None:
    original = {"a.weight": torch.ones(2), "a.bias": torch.ones(1), "b.weight": torch.ones(3)}
    random = {k: torch.full_like(v, 5.0) for k, v in original.items()}
    negated, kept = control_pair(original, random, ["a.weight", "a.bias"], ["a.weight"])
    assert torch.equal(kept["a.weight"], original["a.weight"])
    assert torch.equal(kept["a.bias"], original["a.bias"])
    assert torch.equal(negated["a.weight"], -original["a.weight"])
    assert torch.equal(negated["a.bias"], original["a.bias"])
    assert torch.equal(negated["b.weight"], random["b.weight"])
    assert torch.equal(kept["b.weight"], random["b.weight"])


def test_compare_computes_each_model_once() -> None:
    x = _randn(8, 3)
    grams = {
        "a": {"l": centred_gram(x)},
        "b": {"l": centred_gram(-2 * x)},
        "c": {"l": centred_gram(_randn(8, 3, seed=1))},
    }
    calls: list[str] = []

    def grams_of(model: str) -> dict[str, Tensor]:
        calls.append(model)
        return grams[model]

    rows = (("a vs b", "a", "b"), ("c vs a", "c", "a"), ("b vs c", "b", "c"))
    values = compare(rows, grams_of, (2, 0, 1))
    assert list(values) == ["a vs b", "c vs a", "b vs c"]
    assert values["a vs b"]["l"] == pytest.approx(1.0)
    assert values["c vs a"]["l"] < 1.0
    assert sorted(calls) == ["a", "b", "c"]


def test_analyze_cka_end_to_end(tmp_path: Path) -> None:
    study = Study(tiny_config(), tmp_path, federation=tiny_federation(), options={"samples": "40"})
    report = analyze_cka(study)
    assert report == tmp_path / "analyze_cka.md"
    assert (tmp_path / "analyze_cka.png").stat().st_size > 10_000
    assert (tmp_path / "analyze_cka.svg").read_text().lstrip().startswith("<?xml")  # also as SVG
    data = json.loads((tmp_path / "analyze_cka.json").read_text())
    assert data["rows"] == [label for label, _, _ in ROWS]
    assert data["columns"] == ["fc1", "fc2"]
    assert data["negated_layers"] == ["fc1"]
    assert data["samples"] == 40
    mean = data["mean"]
    assert set(mean) == set(data["rows"]) and set(data["per_seed"]) == {"0"} and data["seeds"] == 1
    assert all(set(cells) == {"fc1", "fc2"} for cells in mean.values())
    assert mean["NoT@τ:0 vs original"]["fc1"] == pytest.approx(1.0, abs=1e-9)
    assert mean["NoT@τ:0 vs original"]["fc2"] < 1.0 - 1e-6
    assert mean["control: (−θ_ℓ)⊕R vs (θ_ℓ)⊕R"]["fc1"] == pytest.approx(1.0, abs=1e-9)
    assert all(0.0 <= v <= 1.0 + 1e-9 for cells in mean.values() for v in cells.values())
    text = report.read_text()
    assert "![Linear CKA per layer and model pair](analyze_cka.png)" in text
    assert "| NoT@τ:-1 vs Retrain |" in text


def test_analyze_cka_rejects_bad_samples(tmp_path: Path) -> None:
    study = Study(tiny_config(), tmp_path, federation=tiny_federation(), options={"samples": "x"})
    with pytest.raises(ConfigError, match="samples"):
        analyze_cka(study)
