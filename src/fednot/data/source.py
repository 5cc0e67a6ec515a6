"""In-memory image datasets: the common currency of every reader, partitioner and trainer.

Every reader returns images as ``uint8`` tensors of shape (N, C, H, W) with ``int64`` labels. The
data sets fednot targets (MNIST, Fashion-MNIST, CIFAR-10/100, Caltech-101 at a chosen size) fit in
memory this way; conversion to float, normalisation and augmentation happen per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fednot.errors import DataError


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images and labels of one split.

    Attributes:
        images: ``uint8`` tensor of shape (N, C, H, W), pixel values 0..255.
        labels: ``int64`` tensor of shape (N,), values in ``0..len(classes)-1``.
        classes: class names, indexed by label.
    """

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(
                f"Expected images as a uint8 tensor of shape (N, C, H, W), got dtype "
                f"{self.images.dtype} and shape {tuple(self.images.shape)}."
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise DataError(
                f"Expected {self.images.shape[0]} int64 labels, got dtype {self.labels.dtype} "
                f"and shape {tuple(self.labels.shape)}."
            )
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DataError(
                f"Labels must lie in 0..{len(self.classes) - 1} ({len(self.classes)} classes), "
                f"found {int(self.labels.min())}..{int(self.labels.max())}."
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Per-image shape (C, H, W)."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, indices: Tensor) -> ImageSet:
        """Return the samples at ``indices`` as a new set (copies the selected rows)."""
        return ImageSet(self.images[indices], self.labels[indices], self.classes)


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """What a reader returns: a training split and, where the format has one, a test split.

    Data sets without a test split (the embedded MNIST-5k, Caltech-101) get a seeded, stratified
    hold-out in `fednot.data.registry.load_dataset`.
    """

    name: str
    train: ImageSet
    test: ImageSet | None

    def __post_init__(self) -> None:
        if self.test is not None and self.test.shape != self.train.shape:
            raise DataError(
                f"{self.name}: train images have shape {self.train.shape} but test images "
                f"{self.test.shape}; both splits must share one image shape."
            )
