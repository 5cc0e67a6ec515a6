"""Readers for image folders: one sub-folder per class, one file per image (Caltech-101 et al.).

On-disk layout::

    <root>/<class name>/<image file>        e.g. <root>/accordion/image_0001.jpg

Class names are the sorted sub-folder names; labels follow that order. Image files have one of
the extensions .jpg .jpeg .png .bmp .gif .ppm (any case); hidden files and folders are skipped.
Caltech-101 is read from ``101_ObjectCategories`` (``<root>`` itself, ``<root>/`` or
torchvision's ``<root>/caltech101/``), without the ``BACKGROUND_Google`` clutter class.
Every image is converted to RGB and resized (bilinear, no crop) to a square of the given size.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fednot.data.source import DatasetSplits, ImageSet
from fednot.errors import ConfigError, DataError, FedNotWarning

__all__ = ["read_caltech101", "read_image_folder"]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm"})

_CALTECH_DIR = "101_ObjectCategories"
_CALTECH_BACKGROUND = "BACKGROUND_Google"


def _visible(path: Path) -> bool:
    """Whether ``path`` is not a hidden file or folder."""
    return not path.name.startswith(".")


def _class_dirs(root: Path, exclude: Collection[str]) -> list[Path]:
    """Sorted, visible class sub-folders of ``root`` not named in ``exclude``."""
    return sorted(
        (
            entry
            for entry in root.iterdir()
            if entry.is_dir() and _visible(entry) and entry.name not in exclude
        ),
        key=lambda entry: entry.name,
    )


def _image_files(folder: Path) -> list[Path]:
    """Sorted, visible image files directly inside ``folder``."""
    return sorted(
        (
            entry
            for entry in folder.iterdir()
            if _visible(entry) and entry.suffix.lower() in IMAGE_EXTENSIONS and entry.is_file()
        ),
        key=lambda entry: entry.name,
    )


def _scan(root: Path, exclude: Collection[str], name: str) -> tuple[list[str], list[list[Path]]]:
    """List the non-empty classes of ``root`` and their image files."""
    classes: list[str] = []
    files: list[list[Path]] = []
    for folder in _class_dirs(root, exclude):
        images = _image_files(folder)
        if not images:
            warnings.warn(
                f"{name}: class folder {folder} holds no image files (expected extensions "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))}); skipping this class.",
                FedNotWarning,
                stacklevel=3,
            )
            continue
        classes.append(folder.name)
        files.append(images)
    if not files:
        raise DataError(
            f"{name}: found no images in {root}. Expected layout: <root>/<class>/<image>, with "
            f"extensions {', '.join(sorted(IMAGE_EXTENSIONS))}. Check the folder."
        )
    return classes, files


def _load_image(path: Path, size: int) -> torch.Tensor:
    """Open, convert to RGB and resize one image; return it as a (3, size, size) tensor."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"Cannot decode image {path} ({type(exc).__name__}: {exc}); expected a readable "
            "JPEG/PNG/BMP/GIF/PPM file. Remove or replace the file."
        ) from exc
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)


def read_image_folder(
    root: Path,
    *,
    image_size: int,
    exclude: Collection[str] = (),
    name: str = "image_folder",
) -> ImageSet:
    """Read a folder with one sub-folder of images per class.

    Args:
        root: the folder holding the class sub-folders.
        image_size: side of the square every image is resized to.
        exclude: class folder names to leave out.
        name: data set name used in messages.

    Returns:
        ``uint8`` images of shape (N, 3, image_size, image_size), ``int64`` labels in the sorted
        order of the class names, and those names.

    Raises:
        ConfigError: if ``image_size`` is not positive.
        DataError: if ``root`` is not a folder, holds no images, or an image cannot be decoded.
    """
    if image_size < 1:
        raise ConfigError(f"image_size must be a positive number of pixels, got {image_size}.")
    if not root.is_dir():
        raise DataError(f"{name}: {root} is not a folder. Expected layout: <root>/<class>/<image>.")
    classes, files = _scan(root, exclude, name)
    count = sum(len(paths) for paths in files)
    images = torch.empty((count, 3, image_size, image_size), dtype=torch.uint8)
    labels = torch.empty(count, dtype=torch.int64)
    index = 0
    for label, paths in enumerate(files):
        for path in paths:
            images[index] = _load_image(path, image_size)
            labels[index] = label
            index += 1
    return ImageSet(images, labels, tuple(classes))


def _caltech_folder(root: Path) -> Path:
    """Locate ``101_ObjectCategories`` at or under ``root``."""
    candidates = [root / _CALTECH_DIR, root / "caltech101" / _CALTECH_DIR]
    if root.name == _CALTECH_DIR:
        candidates.insert(0, root)
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise DataError(
        f"Missing Caltech-101 folder {_CALTECH_DIR}: looked in "
        f"{', '.join(str(folder) for folder in candidates)}. Expected layout: "
        f"<root>/{_CALTECH_DIR}/<class>/image_0001.jpg. Extract 101_ObjectCategories.tar.gz "
        "into <root>."
    )


def read_caltech101(root: Path, *, image_size: int = 224) -> DatasetSplits:
    """Read Caltech-101 (101 object classes, ``BACKGROUND_Google`` excluded).

    Args:
        root: the ``101_ObjectCategories`` folder, its parent, or the parent of torchvision's
            ``caltech101`` folder.
        image_size: side of the square every image is resized to.

    Returns:
        All images as the train split and no test split (the seeded hold-out is made later).

    Raises:
        DataError: if the folder is missing, holds no images, or an image cannot be decoded.
    """
    train = read_image_folder(
        _caltech_folder(root),
        image_size=image_size,
        exclude=(_CALTECH_BACKGROUND,),
        name="caltech101",
    )
    return DatasetSplits(name="caltech101", train=train, test=None)
