"""Readers for image folders: one sub-folder per class, one file per image (Caltech-101 et al.).

On-disk layout (torchvision's ``ImageFolder``)::

    <root>/<class name>/<image file>        e.g. <root>/accordion/image_0001.jpg

Class names are the sorted sub-folder names; labels follow that order. Image files have one of
the extensions .jpg .jpeg .png .bmp .gif .ppm (any case); hidden files and folders are skipped.

The ``imagefolder`` data set (`read_imagefolder`) reads either that layout, as one training pool
from which fednot holds out a seeded test set, or ``<root>/train/<class>/...`` and
``<root>/test/<class>/...`` with the same class folders. Its images keep one channel if every
image is 8-bit greyscale (PIL mode ``1``, ``L`` or ``LA``) and are converted to RGB otherwise;
they keep their size if all share one, and are resized (bilinear, no crop) to a square of
``image_size`` if it is given. An empty class folder is an error there (labels would shift).

Caltech-101 (`read_caltech101`) is read from ``101_ObjectCategories`` (``<root>`` itself,
``<root>/`` or torchvision's ``<root>/caltech101/``), without the ``BACKGROUND_Google`` clutter
class; every image is converted to RGB and resized to a square, and empty class folders are
skipped with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from fednot.data.source import DatasetSplits, ImageSet
from fednot.errors import ConfigError, DataError, FedNotWarning

__all__ = ["read_caltech101", "read_image_folder", "read_imagefolder"]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm"})
GREY_MODES: frozenset[str] = frozenset({"1", "L", "LA"})  # 8-bit greyscale PIL modes

Channels = Literal["rgb", "auto"]  # always RGB | greyscale if every image is, else RGB

_CALTECH_DIR = "101_ObjectCategories"
_CALTECH_BACKGROUND = "BACKGROUND_Google"
_LAYOUT = "<root>/<class>/<image>, or <root>/train/<class>/<image> and <root>/test/<class>/<image>"


@dataclass(frozen=True)
class _Folder:
    """The classes of one folder and their image files, in label order."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[tuple[Path, ...], ...]

    def paths(self) -> list[Path]:
        return [path for paths in self.files for path in paths]


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


def _scan(root: Path, exclude: Collection[str], name: str, *, skip_empty: bool) -> _Folder:
    """List the classes of ``root`` and their image files; empty classes skipped or refused."""
    if not root.is_dir():
        raise DataError(f"{name}: {root} is not a folder. Expected layout: <root>/<class>/<image>.")
    extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
    classes: list[str] = []
    files: list[tuple[Path, ...]] = []
    for folder in _class_dirs(root, exclude):
        images = _image_files(folder)
        if not images:
            message = f"{name}: class folder {folder} holds no image files (expected {extensions})"
            if not skip_empty:
                raise DataError(
                    f"{message}. An empty class would shift the labels of the classes after it: "
                    "add its images or remove the folder."
                )
            warnings.warn(f"{message}; skipping this class.", FedNotWarning, stacklevel=3)
            continue
        classes.append(folder.name)
        files.append(tuple(images))
    if not files:
        raise DataError(
            f"{name}: found no images in {root}. Expected layout: <root>/<class>/<image>, with "
            f"extensions {extensions}. Check the folder."
        )
    return _Folder(root, tuple(classes), tuple(files))


def _decode_error(path: Path, exc: Exception) -> DataError:
    return DataError(
        f"Cannot decode image {path} ({type(exc).__name__}: {exc}); expected a readable "
        "JPEG/PNG/BMP/GIF/PPM file. Remove or replace the file."
    )


_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _probe(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and PIL mode of one image, from its header."""
    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except _DECODE_ERRORS as exc:
        raise _decode_error(path, exc) from exc


def _load_image(path: Path, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Decode one image in ``mode`` ("RGB" or "L"), resized to ``size`` = (width, height)."""
    try:
        with Image.open(path) as image:
            converted = _eight_bit(image, path).convert(mode)
            if converted.size != size:
                converted = converted.resize(size, Image.Resampling.BILINEAR)
            pixels = np.asarray(converted, dtype=np.uint8).copy()
    except _DECODE_ERRORS as exc:
        raise _decode_error(path, exc) from exc
    tensor = torch.from_numpy(pixels)
    return tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)


def _eight_bit(image: Image.Image, path: Path) -> Image.Image:
    """``image`` with 8 bits per channel: 16-bit greyscale rescaled, not clipped to white.

    PIL's ``convert`` clips 16-bit greyscale (mode ``I;16``, or ``I`` for a 16-bit PNG in some
    Pillow versions) at 255, so nearly every pixel would read as white. Integer values beyond 16
    bits and floating-point pixels have no known range and are refused.
    """
    if not (image.mode.startswith("I;16") or image.mode in ("I", "F")):
        return image
    wide = np.asarray(image, dtype=np.float64)
    if image.mode == "F" or (wide.size and (wide.min() < 0 or wide.max() > 65535)):
        raise DataError(
            f"{path} has pixels outside 0..65535 or floating-point ones (PIL mode {image.mode}), "
            "whose range fednot cannot know; save it as an 8- or 16-bit image."
        )
    return Image.fromarray(np.rint(wide / 257.0).astype(np.uint8), mode="L")


def _layout(
    folders: Sequence[_Folder], image_size: int | None, channels: Channels, name: str
) -> tuple[str, tuple[int, int]]:
    """The PIL mode and (width, height) every image of ``folders`` is decoded to."""
    if image_size is not None and channels == "rgb":
        return "RGB", (image_size, image_size)
    headers = [(path, *_probe(path)) for folder in folders for path in folder.paths()]
    grey = channels == "auto" and all(
        mode in GREY_MODES or mode.startswith("I;16") or mode == "I" for _, _, mode in headers
    )
    if image_size is not None:
        return ("L" if grey else "RGB"), (image_size, image_size)
    first, size, _ = headers[0]
    for path, other, _ in headers:
        if other != size:
            raise DataError(
                f"{name}: images differ in size: {first} is {size[0]}x{size[1]} (width x height) "
                f"but {path} is {other[0]}x{other[1]}. Set data.image_size to resize every image "
                "to one square size (e.g. data.image_size = 64)."
            )
    return ("L" if grey else "RGB"), size


def _decode(folder: _Folder, mode: str, size: tuple[int, int]) -> ImageSet:
    """Decode every image of ``folder`` into one preallocated ``uint8`` tensor."""
    paths = folder.paths()
    images = torch.empty((len(paths), len(mode), size[1], size[0]), dtype=torch.uint8)
    labels = torch.empty(len(paths), dtype=torch.int64)
    index = 0
    for label, files in enumerate(folder.files):
        for path in files:
            images[index] = _load_image(path, size, mode)
            labels[index] = label
            index += 1
    return ImageSet(images, labels, folder.classes)


def _check_size(image_size: int | None) -> None:
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image_size must be a positive number of pixels, got {image_size}.")


def read_image_folder(
    root: Path,
    *,
    image_size: int | None,
    exclude: Collection[str] = (),
    name: str = "image_folder",
    channels: Channels = "rgb",
    skip_empty: bool = True,
) -> ImageSet:
    """Read a folder with one sub-folder of images per class.

    Args:
        root: the folder holding the class sub-folders.
        image_size: side of the square every image is resized to; ``None`` keeps the images'
            size, which all must share.
        exclude: class folder names to leave out.
        name: data set name used in messages.
        channels: ``"rgb"`` converts every image to RGB; ``"auto"`` keeps one channel if every
            image is 8-bit greyscale (PIL mode 1, L or LA), else converts to RGB.
        skip_empty: skip a class folder without images (with a `FedNotWarning`) instead of
            raising `DataError`.

    Returns:
        ``uint8`` images of shape (N, C, H, W), ``int64`` labels in the sorted order of the class
        names, and those names.

    Raises:
        ConfigError: if ``image_size`` is not positive.
        DataError: if ``root`` is not a folder, holds no images, an image cannot be decoded, or
            the images differ in size and ``image_size`` is ``None``.
    """
    _check_size(image_size)
    folder = _scan(root, exclude, name, skip_empty=skip_empty)
    return _decode(folder, *_layout([folder], image_size, channels, name))


def read_imagefolder(root: Path, *, image_size: int | None = None) -> DatasetSplits:
    """Read the ``imagefolder`` data set: class folders, or train/ and test/ of class folders.

    Args:
        root: a folder with one sub-folder per class (all of it is the training pool; fednot
            holds out ``data.test_fraction`` of it, seeded), or with ``train/`` and ``test/``
            sub-folders holding the same class folders.
        image_size: side of the square every image is resized to; ``None`` keeps the size.

    Returns:
        The splits named ``imagefolder``; greyscale if every image is (module docstring).

    Raises:
        DataError: on a missing folder, an empty class folder, class folders that differ between
            train/ and test/, an undecodable image, or differing sizes without ``image_size``.
    """
    _check_size(image_size)
    name = "imagefolder"
    if not root.is_dir():
        raise DataError(f"{name}: {root} is not a folder. Expected layout: {_LAYOUT}.")
    has = {part: (root / part).is_dir() for part in ("train", "test")}
    if has["train"] != has["test"]:
        found, missing = ("train", "test") if has["train"] else ("test", "train")
        raise DataError(
            f"{name}: {root} has a {found}/ folder but no {missing}/ folder. Expected layout: "
            f"{_LAYOUT}. Add {missing}/ with the same class folders, or, if {found!r} is a class, "
            "rename it."
        )
    if not has["train"]:
        pool = _scan(root, (), name, skip_empty=False)
        return DatasetSplits(name, _decode(pool, *_layout([pool], image_size, "auto", name)), None)
    others = sorted(p.name for p in _class_dirs(root, ("train", "test")))
    if others:
        warnings.warn(
            f"{name}: {root} has train/ and test/ folders; ignoring its other folders {others}.",
            FedNotWarning,
            stacklevel=2,
        )
    train, test = (
        _scan(root / part, (), f"{name} ({part}/)", skip_empty=False) for part in ("train", "test")
    )
    if train.classes != test.classes:
        only_train = sorted(set(train.classes) - set(test.classes))
        only_test = sorted(set(test.classes) - set(train.classes))
        raise DataError(
            f"{name}: train/ and test/ must hold the same class folders; only in train/: "
            f"{only_train}, only in test/: {only_test}. Make the two lists of class folders equal."
        )
    mode, size = _layout([train, test], image_size, "auto", name)
    return DatasetSplits(name, _decode(train, mode, size), _decode(test, mode, size))


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
