from __future__ import annotations

import pytest
import torch

from fednot.errors import ConfigError, NegationWarning
from fednot.models.layers import layer_graph, resolve_layers
from fednot.models.registry import create_model
from fednot.unlearning.negation import NoT, negate, negation_targets
from fednot.unlearning.registry import create_unlearner


def _state(name: str = "cnn", shape: tuple[int, int, int] = (1, 28, 28)) -> dict[str, torch.Tensor]:
    model = create_model(
        name, input_shape=shape, num_classes=10, generator=torch.Generator().manual_seed(0)
    )
    return model.state_dict()


def test_negating_twice_is_the_identity() -> None:
    state = _state()
    targets = ["block1.conv.weight", "block1.conv.bias"]
    twice = negate(negate(state, targets), targets)
    assert set(twice) == set(state)
    for key in state:
        assert torch.equal(twice[key], state[key])


def test_negate_flips_only_the_targets() -> None:
    state = _state()
    once = negate(state, ["block1.conv.weight"])
    assert torch.equal(once["block1.conv.weight"], -state["block1.conv.weight"])
    assert not torch.equal(once["block1.conv.weight"], state["block1.conv.weight"])
    for key in state:
        if key != "block1.conv.weight":
            assert once[key] is state[key]  # untouched tensors are the very same tensors


def test_negate_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError, match="not in the state dict"):
        negate(_state(), ["nope.weight"])


@pytest.mark.parametrize(
    ("model", "shape", "first", "params"),
    [
        ("cnn", (1, 28, 28), "block1.conv", ("block1.conv.weight", "block1.conv.bias")),
        ("mlp", (1, 28, 28), "fc1", ("fc1.weight", "fc1.bias")),
        ("resnet18", (3, 32, 32), "conv1", ("conv1.weight",)),
        ("vit", (3, 32, 32), "conv_proj", ("conv_proj.weight", "conv_proj.bias")),
    ],
)
def test_first_layer_per_architecture(
    model: str, shape: tuple[int, int, int], first: str, params: tuple[str, ...]
) -> None:
    graph = layer_graph(create_model(model, input_shape=shape, num_classes=10))
    (layer,) = resolve_layers(graph, "first")
    assert layer.name == first
    assert negation_targets([layer], negate_bias=True) == params


def test_weights_only_flag_keeps_the_bias() -> None:
    graph = layer_graph(create_model("cnn", input_shape=(1, 28, 28), num_classes=10))
    layers = resolve_layers(graph, "first")
    assert negation_targets(layers, negate_bias=False) == ("block1.conv.weight",)


def test_not_negates_the_weights_and_not_wb_also_the_bias() -> None:
    model = create_model("cnn", input_shape=(1, 28, 28), num_classes=10)
    from fednot.seeding import SeedStreams
    from fednot.types import ForgetRequest
    from fednot.unlearning.context import UnlearnContext
    from fednot.unlearning.model_parts import ModelParts

    state = model.state_dict()
    # the request alone, as on a Flower app's server: NoT reads no client data
    request = ForgetRequest(clients=(0,))
    ctx = UnlearnContext.create(NoT(), request, ModelParts(model, state), SeedStreams(0))
    result = NoT().unlearn(state, ctx)
    assert torch.equal(result.state["block1.conv.weight"], -state["block1.conv.weight"])
    assert torch.equal(result.state["block1.conv.bias"], state["block1.conv.bias"])
    both = create_unlearner("not_wb").unlearn(state, ctx)
    assert torch.equal(both.state["block1.conv.bias"], -state["block1.conv.bias"])
    assert torch.equal(result.state["block2.conv.weight"], state["block2.conv.weight"])
    assert result.notes["negated_layers"] == ["block1.conv"]
    assert result.schedule == "recovery"


def test_not_refuses_the_output_layer() -> None:
    model = create_model("cnn", input_shape=(1, 28, 28), num_classes=10)
    with pytest.raises(ConfigError, match="output layer"):
        NoT(layers=("fc",)).validate(model)
    with pytest.raises(ConfigError, match="output layer"):
        NoT(layers="last").validate(model)
    with pytest.warns(NegationWarning, match="output layer"):
        NoT(layers=("fc",), strict=False).validate(model)


def test_not_warns_when_a_conv_and_its_norm_cancel() -> None:
    model = create_model("resnet18", input_shape=(3, 32, 32), num_classes=10, options={"width": 8})
    with pytest.warns(NegationWarning, match="cancels out"):
        NoT(layers=("conv1", "bn1")).validate(model)


def test_cnn_conv_and_norm_do_not_cancel_because_relu_sits_between() -> None:
    model = create_model("cnn", input_shape=(1, 28, 28), num_classes=10)
    with pytest.warns(NegationWarning) as caught:
        NoT(layers=("block1.conv", "block1.norm")).validate(model)
    messages = [str(w.message) for w in caught]
    assert not any("cancels out" in m for m in messages)
    assert any("one path" in m for m in messages)


def test_unknown_layer_name_lists_the_known_layers() -> None:
    model = create_model("cnn", input_shape=(1, 28, 28), num_classes=10)
    with pytest.raises(ConfigError, match=r"no layer 'conv9'.*block1\.conv"):
        NoT(layers=("conv9",)).validate(model)


def test_parallel_branches_are_an_antichain() -> None:
    model = create_model("resnet18", input_shape=(3, 32, 32), num_classes=10, options={"width": 8})
    graph = layer_graph(model)
    # the 3x3 path and the 1x1 projection of the first down-sampling block run in parallel
    assert "layer2.0.downsample.0" not in graph.downstream["layer2.0.conv1"]
    assert "layer2.0.conv2" in graph.downstream["layer2.0.conv1"]
    assert graph.is_output("fc") and not graph.is_output("conv1")
