"""ResNet-18, CIFAR variant (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

The NoT paper does not say which variant it used; ours (docs/not.md, "ResNet-18") is the usual
one for 32×32 inputs: a 3×3 stride-1 stem without max-pool, BasicBlocks [2, 2, 2, 2]. Module
names follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``fc``). 11,173,962
parameters for 10 classes. NoT negates ``conv1`` (it has no bias) and leaves ``bn1`` alone:
negating a conv together with the norm right after it cancels (NoT paper, footnote 4).
"""

from __future__ import annotations

from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Two 3×3 convs with BatchNorm and an identity (or 1×1 projection) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: Tensor = self.relu(out + self.downsample(x))
        return result


class ResNet18(nn.Module):
    """ResNet-18 for small images (CIFAR variant)."""

    def __init__(
        self, *, input_shape: tuple[int, int, int], num_classes: int, width: int = 64
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_shape[0], width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        planes = [width, 2 * width, 4 * width, 8 * width]
        in_planes = width
        for index, (out_planes, stride) in enumerate(zip(planes, [1, 2, 2, 2], strict=True)):
            stage = nn.Sequential(
                BasicBlock(in_planes, out_planes, stride), BasicBlock(out_planes, out_planes, 1)
            )
            self.add_module(f"layer{index + 1}", stage)
            in_planes = out_planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Return logits of shape (N, num_classes)."""
        out = self.relu(self.bn1(self.conv1(x)))
        for index in range(1, 5):
            stage: nn.Module = getattr(self, f"layer{index}")
            out = stage(out)
        result: Tensor = self.fc(self.flatten(self.avgpool(out)))
        return result
