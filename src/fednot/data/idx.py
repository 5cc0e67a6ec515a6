"""Readers for MNIST and Fashion-MNIST in the IDX format of their original distribution.

On-disk layout (each file raw or gzipped with a ``.gz`` suffix)::

    <root>/train-images-idx3-ubyte[.gz]   60,000 images, 28x28, uint8
    <root>/train-labels-idx1-ubyte[.gz]   60,000 labels, uint8
    <root>/t10k-images-idx3-ubyte[.gz]    10,000 images
    <root>/t10k-labels-idx1-ubyte[.gz]    10,000 labels

The files may also sit in torchvision's download folders ``<root>/raw/``, ``<root>/MNIST/raw/``
or ``<root>/FashionMNIST/raw/``. An IDX file is: two zero bytes, a dtype byte, a byte with the
number of dimensions, each dimension as a big-endian ``uint32``, then the data, row-major and
big-endian. Gzip is detected by its magic bytes ``1f 8b``, not by the suffix.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from fednot.data.source import DatasetSplits, ImageSet
from fednot.errors import ConfigError, DataError

__all__ = ["read_idx", "read_mnist"]

_GZIP_MAGIC = b"\x1f\x8b"

# IDX dtype byte -> big-endian NumPy dtype of the stored values.
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_CLASSES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}


def read_idx(path: Path) -> torch.Tensor:
    """Parse one IDX file, raw or gzipped.

    Args:
        path: the file to read.

    Returns:
        A tensor with the file's dimensions, in the native dtype matching the IDX dtype byte
        (``uint8`` for MNIST's ``0x08``).

    Raises:
        DataError: if the file is missing, not valid gzip, or not a well-formed IDX file.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"Cannot read IDX file {path}: {exc}. Check the path.") from exc
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"{path} is a corrupt gzip file ({exc}); expected a complete gzip stream. "
                "Download it again."
            ) from exc
    return _parse_idx(raw, path)


def _parse_idx(raw: bytes, path: Path) -> torch.Tensor:
    """Decode the bytes of an uncompressed IDX file."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"{path} is not an IDX file: expected the magic bytes 00 00 <dtype> <ndim>, found "
            f"{raw[:4].hex(' ') or 'an empty file'}. Point fednot at the original MNIST files."
        )
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code not in _IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise DataError(
            f"{path} has unsupported IDX dtype byte 0x{dtype_code:02X}; expected one of {known}."
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(
            f"{path} is corrupt: expected a {header_len}-byte header for {ndim} dimensions, "
            f"found only {len(raw)} bytes. Download it again."
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = np.dtype(_IDX_DTYPES[dtype_code])
    expected = math.prod(dims) * dtype.itemsize
    found = len(raw) - header_len
    if found != expected:
        raise DataError(
            f"{path} is corrupt: expected {expected} bytes of data after the header, found "
            f"{found} (dimensions {dims}). Download it again."
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(dims)
    return torch.from_numpy(values.astype(dtype.newbyteorder("="), copy=True))


def read_mnist(root: Path, name: str = "mnist") -> DatasetSplits:
    """Read MNIST or Fashion-MNIST from its four IDX files.

    Args:
        root: folder holding the files, directly or in torchvision's ``raw/``,
            ``MNIST/raw/`` or ``FashionMNIST/raw/`` sub-folder.
        name: ``"mnist"`` or ``"fashion_mnist"``; picks the class names.

    Returns:
        Train and test splits with ``uint8`` images of shape (N, 1, H, W) and ``int64`` labels.

    Raises:
        ConfigError: if ``name`` is not a known IDX data set.
        DataError: if a file is missing or corrupt, or images and labels disagree.
    """
    if name not in _CLASSES:
        raise ConfigError(
            f"Unknown IDX data set {name!r}; expected one of {', '.join(sorted(_CLASSES))}."
        )
    files = _locate(root)
    classes = _CLASSES[name]
    train = _read_split(files["train_images"], files["train_labels"], classes)
    test = _read_split(files["test_images"], files["test_labels"], classes)
    return DatasetSplits(name=name, train=train, test=test)


def _candidate_dirs(root: Path) -> list[Path]:
    """Folders searched for the IDX files, in order."""
    return [root, root / "raw", root / "MNIST" / "raw", root / "FashionMNIST" / "raw"]


def _find_file(folder: Path, stem: str) -> Path | None:
    """Return ``folder/stem`` or ``folder/stem.gz``, whichever exists (raw first)."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _locate(root: Path) -> dict[str, Path]:
    """Find the first candidate folder holding all four files."""
    best: dict[str, Path] = {}
    best_dir = root
    for folder in _candidate_dirs(root):
        found = {key: path for key, stem in _FILES.items() if (path := _find_file(folder, stem))}
        if len(found) == len(_FILES):
            return found
        if len(found) > len(best):
            best, best_dir = found, folder
    missing = [stem for key, stem in _FILES.items() if key not in best]
    searched = ", ".join(str(folder) for folder in _candidate_dirs(root))
    layout = ", ".join(f"{stem}[.gz]" for stem in _FILES.values())
    raise DataError(
        f"Missing IDX file {', '.join(f'{stem}[.gz]' for stem in missing)} in {best_dir}. "
        f"Searched: {searched}. Expected layout: "
        f"<root>/{{{layout}}} (.gz optional), directly or under raw/, MNIST/raw/ or "
        "FashionMNIST/raw/. Download the four files and place them there."
    )


def _read_split(images_path: Path, labels_path: Path, classes: tuple[str, ...]) -> ImageSet:
    """Read one images/labels file pair into an `ImageSet`."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dim() != 3 or images.dtype != torch.uint8:
        raise DataError(
            f"{images_path}: expected uint8 images of shape (N, H, W), found dtype "
            f"{images.dtype} and shape {tuple(images.shape)}."
        )
    if labels.dim() != 1 or labels.dtype.is_floating_point:
        raise DataError(
            f"{labels_path}: expected integer labels of shape (N,), found dtype {labels.dtype} "
            f"and shape {tuple(labels.shape)}."
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels; expected equal counts. The files come from different "
            "data sets or splits."
        )
    labels = labels.to(torch.int64)
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
        raise DataError(
            f"{labels_path}: expected labels in 0..{len(classes) - 1}, found "
            f"{int(labels.min())}..{int(labels.max())}."
        )
    return ImageSet(images.unsqueeze(1).contiguous(), labels, classes)
