"""BadNets-style backdoor triggers (Gu, Dolan-Gavitt, Garg, "BadNets", 2017).

A malicious client stamps a small fixed patch on some of its training images and relabels them
to a target class. A model trained on them predicts the target class whenever the patch is
present. Unlearning that client must remove this behaviour; the attack success rate on triggered
test images measures it (docs/metrics.md, "Backdoor attack success rate").

The trigger is a checkerboard patch of ``size`` × ``size`` pixels (the top-left pixel at full
intensity), stamped on every channel in pixel space, before normalisation. Its position is the
patch's top-left corner; negative coordinates count from the bottom and the right, as in Python
indexing, so the default ``(-4, -4)`` puts a 3 × 3 patch one pixel from the bottom-right corner,
close to the Adversarial Robustness Toolbox's "pattern" trigger (docs/not.md, "Backdoor").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fednot.data.source import ImageSet
from fednot.errors import ConfigError


@dataclass(frozen=True)
class Trigger:
    """Where and what to stamp, and the label poisoned samples get."""

    size: int = 3
    position: tuple[int, int] = (-4, -4)
    target_label: int = 0

    def corner(self, height: int, width: int) -> tuple[int, int]:
        """The patch's top-left pixel (row, column) on an image of ``height`` × ``width``."""
        row, col = self.position
        row = row + height if row < 0 else row
        col = col + width if col < 0 else col
        if not (0 <= row and row + self.size <= height and 0 <= col and col + self.size <= width):
            raise ConfigError(
                f"A {self.size}x{self.size} trigger at {self.position} does not fit a "
                f"{height}x{width} image; choose scenario.trigger_position inside the image."
            )
        return row, col

    def pattern(self) -> Tensor:
        """The ``uint8`` checkerboard patch (255 where row + column is even, else 0)."""
        rows = torch.arange(self.size)[:, None]
        cols = torch.arange(self.size)[None, :]
        return (((rows + cols) % 2 == 0).to(torch.uint8)) * 255


def stamp(images: Tensor, trigger: Trigger) -> Tensor:
    """Return a copy of ``uint8`` images (N, C, H, W) with the trigger stamped on every channel."""
    out = images.clone()
    row, col = trigger.corner(images.shape[2], images.shape[3])
    out[:, :, row : row + trigger.size, col : col + trigger.size] = trigger.pattern()
    return out


def poison(source: ImageSet, indices: Tensor, trigger: Trigger) -> ImageSet:
    """A copy of ``source`` whose samples at ``indices`` are stamped and relabelled."""
    if not 0 <= trigger.target_label < source.num_classes:
        raise ConfigError(
            f"scenario.target_label={trigger.target_label} is not a class: labels are "
            f"0..{source.num_classes - 1}."
        )
    images = source.images.clone()
    labels = source.labels.clone()
    images[indices] = stamp(source.images[indices], trigger)
    labels[indices] = trigger.target_label
    return ImageSet(images, labels, source.classes)


def triggered_test_set(test: ImageSet, trigger: Trigger) -> ImageSet:
    """The test images whose true label is not the target, stamped, with their true labels."""
    keep = torch.nonzero(test.labels != trigger.target_label).flatten()
    return ImageSet(stamp(test.images[keep], trigger), test.labels[keep], test.classes)
