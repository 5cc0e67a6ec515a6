"""The memory layout of the model's 4-D tensors: channels_last by default, in every cache key."""

from __future__ import annotations

from dataclasses import replace

import torch

from fednot.benchmark.experiment import Experiment
from fednot.config import ModelConfig
from fednot.environment import place_model
from fednot.models.small import CNN
from fednot.testing import tiny_config, tiny_federation

torch.set_num_threads(1)

CNN_CONFIG = ModelConfig(name="cnn", options={"channels": (4, 8)})


def _pretrained(layout: str) -> tuple[Experiment, dict[str, torch.Tensor]]:
    config = tiny_config(model=CNN_CONFIG, memory_format=layout)
    exp = Experiment(config, seed=0, federation=tiny_federation(3))
    return exp, exp.pretrain().state


def test_channels_last_is_the_default_and_the_weights_keep_it_through_training() -> None:
    exp, state = _pretrained("channels_last")
    assert tiny_config().memory_format == "channels_last"
    conv = exp.model.block2.conv.weight  # 4 input channels: the two layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    averaged = state["block2.conv.weight"]  # FedAvg's average keeps the layout
    assert averaged.is_contiguous(memory_format=torch.channels_last)
    assert not averaged.is_contiguous()


def test_the_layout_changes_only_low_order_bits_and_keys_the_cache() -> None:
    last, fast = _pretrained("channels_last")
    plain, slow = _pretrained("contiguous")
    assert plain.model.block2.conv.weight.is_contiguous()
    for name, value in fast.items():
        assert torch.allclose(value, slow[name], atol=1e-4), name
    assert last.cache_key("pretrain") != plain.cache_key("pretrain")
    again = _pretrained("channels_last")[1]
    assert all(torch.equal(fast[k], again[k]) for k in fast)  # bit-identical for one layout


def test_place_model_leaves_linear_layers_alone() -> None:
    model = place_model(CNN(input_shape=(3, 8, 8), num_classes=2), "cpu", "channels_last")
    assert model.block1.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.fc.weight.is_contiguous()
    back = place_model(model, "cpu", "contiguous")
    assert back.block1.conv.weight.is_contiguous()
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(back(x), place_model(back, "cpu", "channels_last")(x), atol=1e-5)
    assert replace(tiny_config(), memory_format="contiguous").memory_format == "contiguous"


def test_the_cnn_pools_before_its_relu_bit_for_bit_as_relu_then_pool() -> None:
    """The two orders commute exactly: outputs and gradients are the paper order's, bit for bit."""
    model = CNN(input_shape=(3, 8, 8), num_classes=3, channels=(4, 8))
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))

    def relu_then_pool(block: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
        return block.norm(block.pool(block.relu(block.conv(h))))

    reference = model.fc(
        model.flatten(relu_then_pool(model.block2, relu_then_pool(model.block1, x)))
    )
    reference.square().sum().backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    out = model(x)
    out.square().sum().backward()
    assert torch.equal(out, reference)
    assert all(torch.equal(p.grad, expected[n]) for n, p in model.named_parameters())
    assert list(dict(model.block1.named_children())) == ["conv", "pool", "relu", "norm"]
