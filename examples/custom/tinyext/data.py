"""A synthetic data set: fednot reads it from `data.dataset = "tinyext.data:load"`.

Four classes of 12x12 grey images: a bright bar (horizontal, vertical, or one of the two
diagonals) at a random offset, over noise. Made with numpy from a fixed seed, so it needs no
download. fednot calls ``load`` with the keywords it accepts among ``root`` and ``image_size``;
it returns ``(train, test)``: each an ``(images, labels)`` pair of uint8 (N, 1, H, W) pixels and
integer labels. Returning ``test = None`` instead would let fednot hold out a seeded share.
"""

from __future__ import annotations

import numpy as np

SIZE = 12
CLASSES = ("horizontal", "vertical", "diagonal", "anti-diagonal")


def _images(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, len(CLASSES), size=count)
    images = rng.normal(60, 25, size=(count, 1, SIZE, SIZE))
    rows, cols = np.indices((SIZE, SIZE))
    for i, (label, offset) in enumerate(zip(labels, rng.integers(-3, 4, size=count), strict=True)):
        mask = [
            rows == SIZE // 2 + offset,
            cols == SIZE // 2 + offset,
            rows - cols == offset,
            rows + cols == SIZE - 1 + offset,
        ][label]
        images[i, 0][mask] = 220
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


Split = tuple[np.ndarray, np.ndarray]


def load(root: str | None = None) -> tuple[Split, Split]:
    """1,200 training and 400 test images; ``root`` is unused (nothing is read from disk)."""
    rng = np.random.default_rng(2026)
    return _images(1200, rng), _images(400, rng)
