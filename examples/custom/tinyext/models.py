"""A small convolutional net: fednot builds it from `model.name = "tinyext.models:make_net"`.

fednot calls the factory with two keywords, ``input_shape`` (C, H, W) and ``num_classes``, plus
whatever ``[model.options]`` holds (here ``width``). NoT negates a layer by its module name:
``stem`` is the first layer, ``head`` the output layer (which NoT refuses to negate).
"""

from __future__ import annotations

from torch import Tensor, nn


class TinyNet(nn.Module):
    """stem (conv) -> body (conv) -> head (linear)."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int) -> None:
        super().__init__()
        channels, height, width_px = input_shape
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.body = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.act = nn.ReLU()
        self.head = nn.Linear(2 * width * (height // 4) * (width_px // 4), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape (N, num_classes)."""
        x = self.pool(self.act(self.stem(x)))
        x = self.pool(self.act(self.body(x)))
        out: Tensor = self.head(x.flatten(1))
        return out


def make_net(*, input_shape: tuple[int, int, int], num_classes: int, width: int = 8) -> nn.Module:
    """The factory fednot imports."""
    return TinyNet(input_shape, num_classes, width)
