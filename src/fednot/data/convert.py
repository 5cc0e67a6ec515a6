"""Data sets in the forms users hold them, converted to fednot's ``uint8`` `ImageSet`.

Accepted forms of one data set (`image_set`):

- an `ImageSet`;
- a pair ``(images, labels)`` of tensors or NumPy arrays: images (N, C, H, W), or (N, H, W) for
  one channel; labels (N,);
- any map-style ``torch.utils.data.Dataset`` (``__len__`` and ``__getitem__``) of
  ``(image, label)`` samples, the image a tensor (C, H, W), a NumPy array (H, W, C) or a PIL
  image (greyscale modes 1, L and LA kept as one channel, other modes converted to RGB); an
  (H, W) image has one channel.

Pixels: fednot stores ``uint8`` images and normalises per channel itself. Integers 0..255 (any
integer dtype) are taken as they are; floating-point pixels must lie in [0, 1] (torchvision's
``ToTensor``) and are scaled by 255 and rounded; anything else is refused. Labels are integers
``0..K-1``; class names come from ``classes``, the data set's ``classes`` attribute (or that of a
``Subset``'s data set), or default to ``"0".."K-1"``. `read_raw` and `settle` are the two steps
of `image_set`, for callers that convert several sets that must agree (`fednot.data.custom`).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fednot.data.imagefolder import GREY_MODES
from fednot.data.source import ImageSet
from fednot.errors import DataError

__all__ = ["RawSet", "image_set", "is_array", "read_raw", "settle"]

_FORMS = (
    "an ImageSet, an (images, labels) pair of tensors or NumPy arrays, or a map-style "
    "torch Dataset of (image, label) samples"
)
_CHUNK = 4096  # rows converted at a time, so a float batch is never copied whole


@dataclass(frozen=True, eq=False)
class RawSet:
    """Converted images and labels, before the classes are settled."""

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...] | None  # explicit names, if the data carried or were given any
    where: str  # which data set, for messages


def is_array(x: object) -> bool:
    """Whether ``x`` is a tensor or a NumPy array."""
    return isinstance(x, Tensor | np.ndarray)


def _tensor(x: object, where: str) -> Tensor:
    """A CPU tensor sharing memory with ``x`` where it can (a tensor or a NumPy array)."""
    if isinstance(x, Tensor):
        return x.detach().cpu()
    try:
        array = np.asarray(x)
        if not array.flags.writeable:
            array = array.copy()
        return torch.from_numpy(np.ascontiguousarray(array))
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{where}: cannot read a {type(x).__name__} as a numeric array ({exc}); expected "
            "a tensor or a NumPy array of numbers."
        ) from exc


def _pixels(x: Tensor, where: str) -> Tensor:
    """``x`` as ``uint8``: integers 0..255 as they are, [0, 1] floats scaled by 255 and rounded."""
    if x.dtype == torch.uint8:
        return x
    if x.dtype == torch.bool or x.is_complex():
        raise DataError(f"{where}: pixels of dtype {x.dtype}; expected uint8 or [0, 1] floats.")
    lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
    if not x.is_floating_point():
        if lo < 0 or hi > 255:
            raise DataError(
                f"{where}: integer pixels must lie in 0..255, found {lo:.0f}..{hi:.0f}. fednot "
                "stores images as uint8: pass 8-bit pixels."
            )
        return x.to(torch.uint8)
    if not 0.0 <= lo <= hi <= 1.0:
        raise DataError(
            f"{where}: floating-point pixels must lie in [0, 1] (torchvision's ToTensor), found "
            f"values in [{lo:.4g}, {hi:.4g}]. fednot stores images as uint8 and normalises per "
            "channel itself: pass raw pixels (0..255) or [0, 1] floats, without Normalize."
        )
    out = torch.empty(x.shape, dtype=torch.uint8)
    for start in range(0, len(x), _CHUNK):
        source, target = x[start : start + _CHUNK], out[start : start + _CHUNK]
        target.copy_(source.to(torch.float32).mul(255.0).round_())  # never in place on x
    return out


def _channels_first(x: Tensor, channels_last: bool, where: str) -> Tensor:
    """One image as (C, H, W): (H, W) gets one channel; (H, W, C) is transposed if so stored."""
    if x.dim() == 2:
        return x[None]
    if x.dim() != 3:
        raise DataError(f"{where}: an image of shape {tuple(x.shape)}; expected 2 or 3 dimensions.")
    kind, order, looks = (
        ("NumPy array", "(H, W, C)", "first") if channels_last else ("tensor", "(C, H, W)", "last")
    )
    channels, other = (x.shape[2], x.shape[0]) if channels_last else (x.shape[0], x.shape[2])
    if channels > 4 and other <= 4:
        raise DataError(
            f"{where}: an image of shape {tuple(x.shape)} looks channel-{looks}, but a {kind} is "
            f"read as {order}. Pass NumPy arrays as (H, W, C) and tensors as (C, H, W)."
        )
    return x.permute(2, 0, 1) if channels_last else x


def _image(image: object, where: str) -> Tensor:
    """One sample's image as a ``uint8`` (C, H, W) tensor."""
    if isinstance(image, Image.Image):
        mode = "L" if image.mode in GREY_MODES else "RGB"
        return _channels_first(torch.from_numpy(np.array(image.convert(mode))), True, where)
    if not is_array(image):
        raise DataError(
            f"{where}: an image of type {type(image).__name__}; expected a tensor (C, H, W), a "
            "NumPy array (H, W, C) or a PIL image."
        )
    x = _channels_first(_tensor(image, where), isinstance(image, np.ndarray), where)
    return _pixels(x, where)


def _label(label: object, where: str) -> int:
    """One sample's label as an int (a Python or NumPy integer, or a one-element tensor)."""
    if isinstance(label, Tensor) and label.numel() == 1:
        label = label.item()
    elif isinstance(label, np.ndarray) and label.size == 1:
        label = label.item()
    if isinstance(label, numbers.Integral) and not isinstance(label, bool):
        return int(label)
    raise DataError(f"{where}: label {label!r}; expected an integer class index 0..K-1.")


def _from_samples(data: Any, where: str) -> tuple[Tensor, Tensor]:
    """Stack a map-style data set of (image, label) samples into one preallocated tensor."""
    count = len(data)
    images: Tensor | None = None
    labels = torch.empty(count, dtype=torch.int64)
    for index in range(count):
        sample, at = data[index], f"{where}, sample {index}"
        if not isinstance(sample, tuple | list) or len(sample) != 2:
            raise DataError(
                f"{at}: a {type(sample).__name__} of length {_length(sample)}; expected an "
                "(image, label) pair. Wrap the data set so that it returns (image, label)."
            )
        image = _image(sample[0], at)
        if images is None:
            images = torch.empty((count, *image.shape), dtype=torch.uint8)
        elif image.shape != images.shape[1:]:
            raise DataError(
                f"{at}: an image of shape {tuple(image.shape)}, but sample 0 has "
                f"{tuple(images.shape[1:])}; all images must share one (C, H, W) shape. Resize "
                "them to one size and one colour mode (e.g. in the data set's transform)."
            )
        images[index] = image
        labels[index] = _label(sample[1], at)
    if images is None:
        raise DataError(f"{where}: the data set is empty; expected at least one sample.")
    return images, labels


def _length(x: object) -> str:
    try:
        return str(len(x))  # type: ignore[arg-type]
    except TypeError:
        return "none"


def _from_arrays(images: object, labels: object, where: str) -> tuple[Tensor, Tensor]:
    """An (images, labels) pair as ``uint8`` (N, C, H, W) images and ``int64`` labels."""
    x = _tensor(images, where)
    x = x[:, None] if x.dim() == 3 else x
    if x.dim() != 4:
        raise DataError(
            f"{where}: images of shape {tuple(x.shape)}; expected (N, C, H, W), or (N, H, W) "
            "for one channel."
        )
    if x.shape[1] > 4 and x.shape[3] <= 4:
        raise DataError(
            f"{where}: images of shape {tuple(x.shape)} look channel-last (N, H, W, C); expected "
            "(N, C, H, W). Transpose them: array.transpose(0, 3, 1, 2) or "
            "tensor.permute(0, 3, 1, 2)."
        )
    if len(x) == 0:
        raise DataError(f"{where}: no images; expected at least one.")
    y = _tensor(labels, where)
    if y.shape != (len(x),) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise DataError(
            f"{where}: labels of dtype {y.dtype} and shape {tuple(y.shape)}; expected {len(x)} "
            "integer class indices 0..K-1, one per image."
        )
    return _pixels(x, where), y.to(torch.int64)


def _classes_of(data: object) -> tuple[str, ...] | None:
    """Class names the data carry: an ImageSet's, or a ``classes`` attribute (also a Subset's)."""
    if isinstance(data, ImageSet):
        return data.classes
    for owner in (data, getattr(data, "dataset", None)):
        names = getattr(owner, "classes", None)
        if isinstance(names, Sequence) and not isinstance(names, str) and len(names) > 0:
            return tuple(str(name) for name in names)
    return None


def read_raw(data: object, where: str, classes: Sequence[str] | None = None) -> RawSet:
    """Convert one data set in any accepted form; the classes are settled by `_settle`."""
    names = tuple(str(c) for c in classes) if classes is not None else _classes_of(data)
    if isinstance(data, ImageSet):
        return RawSet(data.images, data.labels, names, where)
    if isinstance(data, tuple | list) and len(data) == 2 and is_array(data[0]):
        return RawSet(*_from_arrays(data[0], data[1], where), names, where)
    if isinstance(data, str | bytes | Mapping) or not (
        hasattr(data, "__len__") and hasattr(data, "__getitem__")
    ):
        raise DataError(f"{where}: got a {type(data).__name__}; expected {_FORMS}.")
    return RawSet(*_from_samples(data, where), names, where)


MAX_CLASSES = 100_000
"""The most classes a data set may have (ImageNet-21k has 21,841): more is a labelling error."""


def settle(raws: Sequence[RawSet]) -> list[ImageSet]:
    """Check that the sets share one image shape and one class list; build the `ImageSet`s."""
    first = raws[0]
    for raw in raws[1:]:
        if raw.images.shape[1:] != first.images.shape[1:]:
            raise DataError(
                f"{raw.where} has images of shape {tuple(raw.images.shape[1:])} but {first.where} "
                f"{tuple(first.images.shape[1:])}; all must share one (C, H, W) shape. Resize or "
                "crop one of them."
            )
    named = [raw for raw in raws if raw.classes is not None]
    for raw in named[1:]:
        if len(raw.classes or ()) != len(named[0].classes or ()):
            raise DataError(
                f"{raw.where} has {len(raw.classes or ())} classes but {named[0].where} "
                f"{len(named[0].classes or ())}; all must share one list of classes. Pass the "
                "same classes to each."
            )
    shared = named[0].classes if named else None
    count = len(shared) if shared else max(int(raw.labels.max()) for raw in raws) + 1
    if count > MAX_CLASSES:  # one logit per class: a stray label would allocate without end
        where = max(raws, key=lambda raw: int(raw.labels.max())).where
        raise DataError(
            f"{where}: the largest label is {count - 1}, so the model would need {count} outputs, "
            f"more than the {MAX_CLASSES:,} fednot accepts. Labels must be integers 0..K-1: map "
            "yours to that range."
        )
    for raw in raws:
        bad = torch.nonzero((raw.labels < 0) | (raw.labels >= count)).flatten()
        if len(bad):
            index = int(bad[0])
            raise DataError(
                f"{raw.where}: label {int(raw.labels[index])} at index {index} is outside "
                f"0..{count - 1} ({count} classes). Labels must be integers 0..K-1: map yours to "
                "that range (and pass the K class names as classes)."
            )
    default = shared or tuple(str(c) for c in range(count))
    return [ImageSet(raw.images, raw.labels, raw.classes or default) for raw in raws]


def image_set(data: object, classes: Sequence[str] | None = None) -> ImageSet:
    """Convert one data set in any accepted form (module docstring) to an `ImageSet`.

    Args:
        data: an `ImageSet`, an ``(images, labels)`` pair of tensors or NumPy arrays, or a
            map-style data set of ``(image, label)`` samples.
        classes: class names, indexed by label; default: the data set's own (an `ImageSet`'s or
            a ``classes`` attribute), else ``"0".."K-1"`` with K the largest label + 1.

    Returns:
        ``uint8`` images (N, C, H, W), stacked once; an ``ImageSet`` or ``uint8`` input is not
        copied.

    Raises:
        DataError: on an unsupported form, images of differing shapes, pixels that are neither
            0..255 integers nor [0, 1] floats, or labels that are not integers 0..K-1; each
            message names the offending sample or label.
    """
    if isinstance(data, ImageSet) and classes is None:
        return data
    return settle([read_raw(data, "data set", classes)])[0]
