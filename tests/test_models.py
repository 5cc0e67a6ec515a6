from __future__ import annotations

import pytest
import torch

from fednot.errors import ConfigError
from fednot.models.registry import create_model


@pytest.mark.parametrize(
    ("name", "shape", "classes", "params"),
    [
        ("cnn", (1, 28, 28), 10, 50_378),
        ("cnn", (3, 32, 32), 10, 60_554),
        ("cnn", (3, 32, 32), 100, 429_284),
        ("mlp", (1, 28, 28), 10, 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10),
        ("resnet18", (3, 32, 32), 10, 11_173_962),
        ("resnet18", (3, 32, 32), 100, 11_220_132),
    ],
)
def test_parameter_counts(
    name: str, shape: tuple[int, int, int], classes: int, params: int
) -> None:
    model = create_model(name, input_shape=shape, num_classes=classes)
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize(
    ("name", "shape", "options"),
    [
        ("cnn", (3, 32, 32), {}),
        ("mlp", (1, 28, 28), {}),
        ("resnet18", (1, 28, 28), {"width": 8}),
        ("vit", (3, 32, 32), {}),
        ("vit", (3, 64, 64), {"patch_size": 16, "dim": 48, "depth": 2, "heads": 3, "mlp_dim": 96}),
    ],
)
def test_forward_shapes_and_seeded_init(
    name: str, shape: tuple[int, int, int], options: dict
) -> None:  # type: ignore[type-arg]
    make = lambda seed: create_model(  # noqa: E731
        name,
        input_shape=shape,
        num_classes=7,
        options=options,
        generator=torch.Generator().manual_seed(seed),
    )
    a, b, c = make(0), make(0), make(1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    assert a(torch.zeros(2, *shape)).shape == (2, 7)


def test_vit_b16_is_the_paper_size() -> None:
    model = create_model("vit_b16", input_shape=(3, 224, 224), num_classes=101)
    assert model.conv_proj.kernel_size == (16, 16)
    assert 85_000_000 < sum(p.numel() for p in model.parameters()) < 87_000_000


def test_vit_patch_size_must_divide_the_image() -> None:
    with pytest.raises(ConfigError, match="patch_size=5 must divide"):
        create_model("vit", input_shape=(3, 32, 32), num_classes=10, options={"patch_size": 5})
