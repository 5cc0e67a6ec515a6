"""Readers for CIFAR-10 and CIFAR-100 in the "python version" pickles of their distribution.

On-disk layout (``<root>`` may also be the ``cifar-*`` folder itself)::

    <root>/cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch, batches.meta
    <root>/cifar-100-python/train, test, meta

Each batch is a pickled dict (written by Python 2, so keys are ``bytes`` when loaded with
``encoding="bytes"``; ``str`` keys are accepted too) with ``data``, an N x 3072 ``uint8`` array
whose rows hold 1024 red, 1024 green and 1024 blue values, each a 32 x 32 image in row-major
order, and ``labels`` (CIFAR-10) or ``fine_labels``/``coarse_labels`` (CIFAR-100), lists of int.
The meta file holds ``label_names`` (CIFAR-10) or ``fine_label_names``/``coarse_label_names``.

Pickles can run arbitrary code, so they are loaded with an unpickler that resolves only the few
globals NumPy arrays need.
"""

from __future__ import annotations

import _codecs
import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from fednot.data.source import DatasetSplits, ImageSet
from fednot.errors import ConfigError, DataError

__all__ = ["read_cifar10", "read_cifar100"]

_ROW = 3 * 32 * 32
_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)
_CIFAR10_DIR = "cifar-10-batches-py"
_CIFAR100_DIR = "cifar-100-python"
_CIFAR10_LAYOUT = f"<root>/{_CIFAR10_DIR}/{{data_batch_1..data_batch_5, test_batch, batches.meta}}"
_CIFAR100_LAYOUT = f"<root>/{_CIFAR100_DIR}/{{train, test, meta}}"
_LABEL_MODES = ("fine", "coarse")


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals CIFAR batches reference."""

    def __init__(self, file: Any, source: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str, /) -> Any:
        """Resolve ``module.name`` if it is on the allow-list, else refuse."""
        if (module, name) not in _ALLOWED:
            raise DataError(
                f"refusing to unpickle {module}.{name} from {self._source}: CIFAR batches "
                "contain only dicts, lists and NumPy arrays. Use the original CIFAR files."
            )
        if module == "_codecs":
            return _codecs.encode
        if module == "numpy":
            return getattr(np, name)
        return getattr(_multiarray(), name)


def _multiarray() -> Any:
    """NumPy's multiarray module under its NumPy 2 name, or its NumPy 1 name."""
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # pragma: no cover - NumPy < 1.26
        return importlib.import_module("numpy.core.multiarray")


def _unpickle(path: Path, layout: str) -> dict[str, Any]:
    """Load one pickled dict with the restricted unpickler; keys become ``str``."""
    if not path.is_file():
        raise DataError(
            f"Missing CIFAR file {path.name} (looked for {path}). Expected layout: {layout}. "
            "Download and extract the Python version of the data set there."
        )
    try:
        with path.open("rb") as handle:
            obj = _RestrictedUnpickler(handle, path).load()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"{path} is not a valid pickle ({type(exc).__name__}: {exc}); expected a complete "
            "CIFAR batch. Download and extract the data set again."
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(obj).__name__}.")
    return {_text(key): value for key, value in obj.items()}


def _text(value: object) -> str:
    """Decode a bytes key or name; pass str through."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _field(batch: dict[str, Any], key: str, path: Path) -> Any:
    """Return ``batch[key]`` or raise a DataError naming file and key."""
    if key not in batch:
        raise DataError(
            f"{path}: expected key {key!r}, found keys {sorted(batch)}. The file is not a "
            "CIFAR batch of this data set."
        )
    return batch[key]


def _read_batch(path: Path, label_key: str, layout: str) -> tuple[NDArray[np.uint8], list[int]]:
    """Read one batch file: its N x 3072 data rows and its N labels."""
    batch = _unpickle(path, layout)
    data = _field(batch, "data", path)
    labels = _field(batch, label_key, path)
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != _ROW:
        found = f"shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(
            f"{path}: key 'data' must be an N x {_ROW} uint8 array, found {found}. The file is "
            "corrupt or not a CIFAR batch."
        )
    if data.dtype != np.uint8:
        raise DataError(f"{path}: key 'data' must have dtype uint8, found {data.dtype}.")
    if not isinstance(labels, list | np.ndarray) or len(labels) != data.shape[0]:
        count = len(labels) if isinstance(labels, list | np.ndarray) else type(labels).__name__
        raise DataError(
            f"{path}: key {label_key!r} must list {data.shape[0]} labels (one per data row), "
            f"found {count}."
        )
    return data, [int(label) for label in labels]


def _read_names(path: Path, key: str, layout: str) -> tuple[str, ...]:
    """Read the class names stored under ``key`` in a meta file."""
    names = _field(_unpickle(path, layout), key, path)
    if not isinstance(names, list) or not names:
        raise DataError(f"{path}: key {key!r} must be a non-empty list of class names.")
    return tuple(_text(name) for name in names)


def _to_set(
    batches: list[tuple[NDArray[np.uint8], list[int]]], classes: tuple[str, ...], source: Path
) -> ImageSet:
    """Stack batches into an `ImageSet` of (N, 3, 32, 32) images."""
    data = np.concatenate([rows for rows, _ in batches]).reshape(-1, 3, 32, 32)
    labels = torch.tensor([label for _, labels in batches for label in labels], dtype=torch.int64)
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
        raise DataError(
            f"{source}: expected labels in 0..{len(classes) - 1} ({len(classes)} classes in "
            f"the meta file), found {int(labels.min())}..{int(labels.max())}."
        )
    return ImageSet(torch.from_numpy(np.ascontiguousarray(data)), labels, classes)


def _folder(root: Path, name: str, marker: str, layout: str) -> Path:
    """Return ``root/name`` or ``root`` itself, whichever holds ``marker``."""
    for folder in (root / name, root):
        if (folder / marker).is_file():
            return folder
    raise DataError(
        f"Missing CIFAR file {marker}: looked in {root / name} and {root}. Expected layout: "
        f"{layout}. Download and extract the Python version of the data set there."
    )


def read_cifar10(root: Path) -> DatasetSplits:
    """Read CIFAR-10 from ``cifar-10-batches-py``.

    Args:
        root: the ``cifar-10-batches-py`` folder or its parent.

    Returns:
        Train (50,000 images from five batches) and test splits, ``uint8`` images of shape
        (N, 3, 32, 32), ``int64`` labels and the class names from ``batches.meta``.

    Raises:
        DataError: if a file is missing, corrupt, unsafe or laid out differently.
    """
    folder = _folder(root, _CIFAR10_DIR, "batches.meta", _CIFAR10_LAYOUT)
    classes = _read_names(folder / "batches.meta", "label_names", _CIFAR10_LAYOUT)
    train = [
        _read_batch(folder / f"data_batch_{index}", "labels", _CIFAR10_LAYOUT)
        for index in range(1, 6)
    ]
    test = [_read_batch(folder / "test_batch", "labels", _CIFAR10_LAYOUT)]
    return DatasetSplits(
        name="cifar10",
        train=_to_set(train, classes, folder / "data_batch_*"),
        test=_to_set(test, classes, folder / "test_batch"),
    )


def read_cifar100(root: Path, label_mode: str = "fine") -> DatasetSplits:
    """Read CIFAR-100 from ``cifar-100-python``.

    Args:
        root: the ``cifar-100-python`` folder or its parent.
        label_mode: ``"fine"`` (100 classes) or ``"coarse"`` (20 super-classes).

    Returns:
        Train and test splits, ``uint8`` images of shape (N, 3, 32, 32), ``int64`` labels and
        the class names from ``meta``.

    Raises:
        ConfigError: if ``label_mode`` is neither ``"fine"`` nor ``"coarse"``.
        DataError: if a file is missing, corrupt, unsafe or laid out differently.
    """
    if label_mode not in _LABEL_MODES:
        raise ConfigError(
            f"label_mode must be one of {', '.join(map(repr, _LABEL_MODES))}, got {label_mode!r}."
        )
    folder = _folder(root, _CIFAR100_DIR, "meta", _CIFAR100_LAYOUT)
    names_key, label_key = f"{label_mode}_label_names", f"{label_mode}_labels"
    classes = _read_names(folder / "meta", names_key, _CIFAR100_LAYOUT)
    train = _read_batch(folder / "train", label_key, _CIFAR100_LAYOUT)
    test = _read_batch(folder / "test", label_key, _CIFAR100_LAYOUT)
    return DatasetSplits(
        name="cifar100",
        train=_to_set([train], classes, folder / "train"),
        test=_to_set([test], classes, folder / "test"),
    )
