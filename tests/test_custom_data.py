"""Your own model and data: image folders, the accepted forms of a data set, custom federations."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import fednot.data
from fednot.benchmark.experiment import Experiment
from fednot.config import DataConfig, ModelConfig, RunConfig
from fednot.data import as_splits, federation_from_clients, image_set, partition_dataset
from fednot.data import registry as data_registry
from fednot.data.imagefolder import _eight_bit, read_imagefolder
from fednot.data.source import DatasetSplits, ImageSet
from fednot.errors import ConfigError, DataError, FedNotWarning
from fednot.models import registry as model_registry
from fednot.seeding import SeedStreams
from fednot.testing import synthetic_images, tiny_config
from fednot.types import ForgetRequest
from fednot.unlearning.negation import NoT
from fednot.unlearning.registry import create_unlearner

torch.set_num_threads(1)

MODEL = "custom_data_test_net"
REQUEST = ForgetRequest(clients=(0,))

# ---------------------------------------------------------------------------- image folders


def save(path: Path, pixels: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, fmt)


def pattern(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def write_classes(root: Path, per_class: int, shape: tuple[int, ...], ext: str = "png") -> None:
    """Classes ``cat`` and ``dog``, ``per_class`` random images each."""
    for c, name in enumerate(("dog", "cat")):  # written out of order: labels follow sorted names
        for i in range(per_class):
            save(root / name / f"{i:03d}.{ext}", pattern(100 * c + i, shape))


def test_imagefolder_flat_layout_holds_out_a_seeded_stratified_test_set(tmp_path: Path) -> None:
    write_classes(tmp_path, 10, (6, 8, 3))
    splits = read_imagefolder(tmp_path)
    assert splits.name == "imagefolder" and splits.test is None
    assert (
        splits.train.classes == ("cat", "dog")
        and splits.train.labels.tolist() == [0] * 10 + [1] * 10
    )
    assert tuple(splits.train.images.shape) == (20, 3, 6, 8)  # size kept: H=6, W=8
    png = torch.from_numpy(pattern(100, (6, 8, 3))).permute(2, 0, 1)
    assert torch.equal(splits.train.images[0], png)  # cat/000.png, lossless

    config = DataConfig(dataset="imagefolder", root=str(tmp_path), num_clients=2, test_fraction=0.2)
    federation, partition = data_registry.load_federation(config, SeedStreams(0))
    assert partition.test is not None and len(federation.test) == 4
    assert federation.test.labels.tolist().count(0) == 2  # stratified: 2 of each class
    assert federation.input_shape == (3, 6, 8) and federation.num_classes == 2
    again = data_registry.load_federation(config, SeedStreams(0))[1].test
    other = data_registry.load_federation(config, SeedStreams(1))[1].test
    assert again is not None and other is not None
    assert np.array_equal(partition.test, again) and not np.array_equal(partition.test, other)


def test_imagefolder_registry_entry() -> None:
    info = data_registry.dataset_info("imagefolder")
    assert "imagefolder" in data_registry.dataset_names()
    assert info.needs_root and not info.augment and "train/<class>" in info.layout


def test_imagefolder_train_and_test_folders_are_the_splits(tmp_path: Path) -> None:
    write_classes(tmp_path / "train", 3, (6, 10, 3), "jpg")
    write_classes(tmp_path / "test", 2, (6, 10, 3), "jpeg")
    splits = read_imagefolder(tmp_path)
    assert splits.test is not None and splits.train.classes == splits.test.classes == ("cat", "dog")
    assert tuple(splits.train.images.shape) == (6, 3, 6, 10)
    assert tuple(splits.test.images.shape) == (4, 3, 6, 10)
    assert splits.test.labels.tolist() == [0, 0, 1, 1]
    resized = read_imagefolder(tmp_path, image_size=8)
    assert resized.test is not None and tuple(resized.test.images.shape) == (4, 3, 8, 8)


def test_imagefolder_keeps_greyscale_images_single_channel(tmp_path: Path) -> None:
    write_classes(tmp_path / "train", 2, (5, 5))
    write_classes(tmp_path / "test", 1, (5, 5))
    grey = read_imagefolder(tmp_path)
    assert grey.test is not None and tuple(grey.test.images.shape) == (2, 1, 5, 5)
    assert torch.equal(grey.train.images[0, 0], torch.from_numpy(pattern(100, (5, 5))))
    save(tmp_path / "test" / "dog" / "colour.png", pattern(7, (5, 5, 3)))  # one RGB image
    mixed = read_imagefolder(tmp_path)
    assert tuple(mixed.train.images.shape) == (4, 3, 5, 5)  # train is RGB too: one shape
    assert bool((mixed.train.images[0] == mixed.train.images[0, :1]).all())  # grey x3


def test_imagefolder_sizes_must_agree_unless_image_size_is_set(tmp_path: Path) -> None:
    save(tmp_path / "a" / "1.png", pattern(0, (8, 8, 3)))
    save(tmp_path / "b" / "2.png", pattern(1, (9, 8, 3)))
    with pytest.raises(
        DataError, match=r"differ in size: .*1\.png is 8x8 .*2\.png is 8x9.*image_size"
    ):
        read_imagefolder(tmp_path)
    assert tuple(read_imagefolder(tmp_path, image_size=8).train.images.shape) == (2, 3, 8, 8)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("empty-class", r"class folder .*ghost holds no image files.*remove the folder"),
        ("no-classes", "found no images"),
        ("train-only", "has a train/ folder but no test/ folder"),
        ("other-classes", r"same class folders; only in train/: \['dog'\], only in test/: \[\]"),
        ("not-a-folder", "is not a folder"),
    ],
)
def test_imagefolder_refuses_bad_layouts(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "data"
    if layout == "empty-class":
        write_classes(root, 2, (4, 4, 3))
        (root / "ghost").mkdir()
    elif layout == "no-classes":
        root.mkdir()
        (root / "notes.txt").write_text("no images")
    elif layout == "train-only":
        write_classes(root / "train", 2, (4, 4, 3))
    elif layout == "other-classes":
        write_classes(root / "train", 2, (4, 4, 3))
        save(root / "test" / "cat" / "x.png", pattern(0, (4, 4, 3)))
    with pytest.raises(DataError, match=message):
        read_imagefolder(root)


def test_imagefolder_warns_about_folders_beside_train_and_test(tmp_path: Path) -> None:
    write_classes(tmp_path / "train", 1, (4, 4, 3))
    write_classes(tmp_path / "test", 1, (4, 4, 3))
    (tmp_path / "val").mkdir()
    with pytest.warns(FedNotWarning, match=r"ignoring its other folders \['val'\]"):
        read_imagefolder(tmp_path)


# ---------------------------------------------------------------------------- image_set


class FloatDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """What torchvision's ToTensor gives: float (C, H, W) in [0, 1], with tensor labels."""

    classes = ["zero", "one", "two"]

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].float() / 255, self.labels[index]


def pixels(n: int = 6, shape: tuple[int, ...] = (3, 4, 5)) -> torch.Tensor:
    return torch.from_numpy(pattern(n, (n, *shape)))


def test_image_set_takes_uint8_pairs_without_copying() -> None:
    images, labels = pixels(), torch.tensor([0, 1, 2, 0, 1, 3])
    converted = image_set((images, labels))
    assert converted.images.data_ptr() == images.data_ptr()
    assert converted.classes == ("0", "1", "2", "3") and converted.labels.dtype == torch.int64
    as_numpy = image_set((images.numpy(), labels.numpy()), classes=["a", "b", "c", "d"])
    assert torch.equal(as_numpy.images, images) and as_numpy.classes == ("a", "b", "c", "d")
    flat = image_set((images[:, 0].numpy(), labels))  # (N, H, W): one channel
    assert tuple(flat.images.shape) == (6, 1, 4, 5) and torch.equal(flat.images[:, 0], images[:, 0])
    same = ImageSet(images, labels, tuple("abcd"))
    assert image_set(same) is same


def test_image_set_scales_unit_floats_and_reads_datasets() -> None:
    images, labels = pixels(), torch.tensor([0, 1, 2, 0, 1, 2])
    floats = images.float() / 255
    assert torch.equal(image_set((floats, labels)).images, images)
    assert torch.equal(floats, images.float() / 255)  # the caller's floats are not modified
    dataset = image_set(FloatDataset(images, labels))
    assert torch.equal(dataset.images, images) and dataset.classes == ("zero", "one", "two")
    subset = image_set(torch.utils.data.Subset(FloatDataset(images, labels), [1, 4]))
    assert subset.classes == ("zero", "one", "two") and subset.labels.tolist() == [1, 1]


def test_image_set_reads_numpy_hwc_and_pil_samples() -> None:
    hwc = [pattern(i, (4, 5, 3)) for i in range(3)]
    from_numpy = image_set([(array, np.int64(i)) for i, array in enumerate(hwc)])
    assert tuple(from_numpy.images.shape) == (3, 3, 4, 5)
    assert torch.equal(from_numpy.images[1], torch.from_numpy(hwc[1]).permute(2, 0, 1))
    rgb = image_set([(Image.fromarray(array), i % 2) for i, array in enumerate(hwc)])
    assert torch.equal(rgb.images, from_numpy.images) and rgb.classes == ("0", "1")
    grey = image_set([(Image.fromarray(array[..., 0]), 0) for array in hwc])
    assert tuple(grey.images.shape) == (3, 1, 4, 5)
    assert torch.equal(grey.images[2, 0], torch.from_numpy(hwc[2][..., 0]))


def _refusal(case: str) -> Any:
    images, labels = pixels(), torch.tensor([0, 1, 2, 0, 1, 2])
    cases: dict[str, Any] = {
        "0-255 floats": (images.float(), labels),
        "normalised floats": ((images.float() / 255 - 0.5) / 0.25, labels),
        "nan": (torch.full((2, 1, 3, 3), math.nan), torch.tensor([0, 1])),
        "16-bit integers": (images.to(torch.int32) * 256, labels),
        "channel-last batch": (images.permute(0, 2, 3, 1).numpy().repeat(2, 1), labels),
        "channel-first array": [(pattern(0, (3, 8, 8)), 0)],
        "shape mismatch": [(images[0], 0), (images[1], 1), (images[2, :, :3], 0)],
        "negative label": (images, torch.tensor([0, 1, -1, 0, 1, 2])),
        "float label": [(images[0], 0), (images[1], 1.0)],
        "float labels": (images, labels.float()),
        "label past classes": ImageSet(images, labels, ("a", "b", "c")),
        "not a pair": [images[0], images[1], images[2]],
        "empty": [],
        "text": "images/",
        "image of text": [("cat.png", 0)],
    }
    return cases[case]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "0-255 floats",
            r"must lie in \[0, 1\].*found values in \[\d+, 25\d\].*normalises per channel",
        ),
        ("normalised floats", r"must lie in \[0, 1\].*without Normalize"),
        ("nan", r"found values in \[nan, nan\]"),
        ("16-bit integers", r"integer pixels must lie in 0\.\.255"),
        ("channel-last batch", r"look channel-last \(N, H, W, C\).*permute\(0, 3, 1, 2\)"),
        (
            "channel-first array",
            r"sample 0: .*\(3, 8, 8\) looks channel-first.*NumPy arrays as \(H, W, C\)",
        ),
        (
            "shape mismatch",
            r"sample 2: an image of shape \(3, 3, 5\), but sample 0 has \(3, 4, 5\)",
        ),
        ("negative label", r"label -1 at index 2 is outside 0\.\.2"),
        ("float label", r"sample 1: label 1\.0; expected an integer class index"),
        ("float labels", r"labels of dtype torch\.float32.*expected 6 integer class indices"),
        ("label past classes", r"label 2 at index 2 is outside 0\.\.1 \(2 classes\)"),
        ("not a pair", r"sample 0: a Tensor of length 3; expected an \(image, label\) pair"),
        ("empty", "the data set is empty"),
        ("text", r"got a str; expected an ImageSet, an \(images, labels\) pair"),
        ("image of text", r"sample 0: an image of type str; expected a tensor"),
    ],
)
def test_image_set_refuses_with_a_message(case: str, message: str) -> None:
    data = _refusal(case)
    classes = ("a", "b") if case == "label past classes" else None
    with pytest.raises(DataError, match=message):
        image_set(data, classes=classes)


# ---------------------------------------------------------------------------- as_splits


def test_as_splits_without_a_test_set_and_with_one() -> None:
    images = pixels(8)
    alone = as_splits((images, torch.tensor([0, 1] * 4)), "mine")  # one (images, labels) set
    assert alone.name == "mine" and alone.test is None and alone.train.num_classes == 2
    assert as_splits(((images, torch.tensor([0, 1] * 4)), None), "mine").test is None
    both = as_splits(((images, torch.tensor([0, 1] * 4)), (images[:2], torch.tensor([3, 0]))), "m")
    assert both.test is not None and both.train.num_classes == both.test.num_classes == 4
    splits = DatasetSplits("given", alone.train, None)
    assert as_splits(splits, "other") is splits


def test_as_splits_refuses_differing_shapes_and_class_counts() -> None:
    train = (pixels(4), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(
        DataError,
        match=r"m: test set has images of shape \(1, 4, 5\) but m: training set \(3, 4, 5\)",
    ):
        as_splits((train, (pixels(4)[:, :1], torch.tensor([0, 1, 0, 1]))), "m")
    test = FloatDataset(pixels(3), torch.tensor([0, 1, 2]))  # three named classes
    with pytest.raises(DataError, match="has 3 classes but m: training set 2"):
        as_splits((ImageSet(*train, ("a", "b")), test), "m")


# ---------------------------------------------------------------------------- custom federations


class TinyConvNet(nn.Module):
    """The user's model: a conv ``stem`` and a linear ``head``."""

    def __init__(self, *, input_shape: tuple[int, int, int], num_classes: int, width: int = 4):
        super().__init__()
        channels, height, width_px = input_shape
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.head = nn.Linear(width * height * width_px, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.stem(x)).flatten(1))


@pytest.fixture
def user_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(model_registry, "_MODELS", dict(model_registry._MODELS))
    model_registry.register_model(MODEL, TinyConvNet)
    yield MODEL


def _config(**data: Any) -> RunConfig:
    return tiny_config(
        data=DataConfig(num_clients=3, **data), model=ModelConfig(name=MODEL, options={"width": 4})
    )


def _client_forms(pool: ImageSet) -> list[Any]:
    """Three clients of 40 images each, in three different forms."""
    rows = [torch.arange(40 * k, 40 * (k + 1)) for k in range(3)]
    first = (pool.images[rows[0]], pool.labels[rows[0]])
    second = FloatDataset(pool.images[rows[1]], pool.labels[rows[1]])
    third = [(pool.images[i].permute(1, 2, 0).numpy(), int(pool.labels[i])) for i in rows[2]]
    return [first, second, third]


def test_federation_from_clients_drives_an_experiment(user_model: str) -> None:
    pool = synthetic_images(150, shape=(3, 8, 8), num_classes=3, seed=1)
    federation = federation_from_clients(_client_forms(pool), pool.subset(torch.arange(120, 150)))
    assert federation.ids == (0, 1, 2) and federation.input_shape == (3, 8, 8)
    assert federation.num_classes == 3 and len(federation.test) == 30
    for k, client in enumerate(federation.clients):
        assert (len(client.train), len(client.val)) == (32, 8)
        held = torch.cat([client.train.indices, client.val.indices]).sort().values
        assert torch.equal(held, torch.arange(40 * k, 40 * (k + 1)))  # exactly its own images
        assert torch.equal(client.train.source.images[held], pool.images[held])
    again = federation_from_clients(_client_forms(pool), pool.subset(torch.arange(120, 150)))
    assert torch.equal(again.clients[1].val.indices, federation.clients[1].val.indices)
    assert federation.fingerprint() == again.fingerprint()
    other = federation_from_clients(
        _client_forms(pool), pool.subset(torch.arange(120, 150)), seed=1
    )
    assert not torch.equal(other.clients[1].val.indices, federation.clients[1].val.indices)

    exp = Experiment(_config(), 0, federation=federation)
    trained = exp.pretrain()
    outcome = exp.unlearn(trained, REQUEST, create_unlearner("not", {"layers": ["stem"]}))
    assert outcome.notes["negated_layers"] == ["stem"]
    assert outcome.notes["negated_parameters"] == ["stem.weight"]
    assert len(outcome.log.rounds) == 2
    metrics = exp.evaluate(outcome.state)
    assert all(0 <= m <= 100 for m in (metrics.test_acc, metrics.forget_acc, metrics.retain_acc))


def test_federation_from_clients_refuses_bad_input() -> None:
    pool = synthetic_images(20, shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="at least one client"):
        federation_from_clients([], pool)
    with pytest.raises(ConfigError, match=r"val_fraction must lie in \(0, 1\)"):
        federation_from_clients([pool], pool, val_fraction=1.0)
    with pytest.raises(ConfigError, match="client 1 holds 1 samples.*leaves none for training"):
        federation_from_clients([pool, pool.subset(torch.tensor([0]))], pool, val_fraction=0.6)
    with pytest.raises(DataError, match=r"test set has images of shape \(3, 8, 8\) but client 0"):
        federation_from_clients([pool], synthetic_images(4, shape=(3, 8, 8)))


def test_partition_dataset_equals_the_experiments_own_split(
    user_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = synthetic_images(120, shape=(3, 8, 8), num_classes=3, seed=2)
    config = _config(partition="dirichlet", alpha=1.0, min_client_samples=10)
    federation, partition = partition_dataset(
        (pool.images.numpy(), pool.labels.numpy()), config=config.data, seed=5
    )
    assert partition.num_clients == 3 and partition.test is not None
    assert len(federation.test) == 24  # the seeded 20 % hold-out, 8 of each class
    assert sorted(
        np.concatenate([*partition.train, *partition.val, partition.test]).tolist()
    ) == list(range(120))

    splits = DatasetSplits("custom", pool, None)
    monkeypatch.setattr(data_registry, "read_dataset", lambda *args, **kwargs: splits)
    exp = Experiment(config, 5)  # reads "the same data" through the patched reader
    assert exp.partition is not None and exp.partition.test is not None
    assert np.array_equal(exp.partition.test, partition.test)
    for ours, theirs in zip(
        partition.train + partition.val, exp.partition.train + exp.partition.val, strict=True
    ):
        assert np.array_equal(ours, theirs)
    assert exp.federation.fingerprint() == federation.fingerprint()
    other, _ = partition_dataset(pool, config=config.data, seed=6)
    assert other.fingerprint() != federation.fingerprint()

    custom = Experiment(
        RunConfig(**{**vars(config), "options": {"not": {"layers": ["stem"]}}}),
        5,
        federation=federation,
    )
    outcome = custom.unlearn(custom.pretrain(), REQUEST, "not")
    assert outcome.notes["negated_layers"] == ["stem"]
    assert math.isfinite(custom.evaluate(outcome.state).test_acc)


def _refusal_message(model: nn.Module, layer: str) -> str:
    with pytest.raises(ConfigError) as info:
        NoT(layers=(layer,)).validate(model)
    return str(info.value)


def test_not_refuses_the_users_output_layer_like_a_shipped_models(user_model: str) -> None:
    mine = model_registry.create_model(MODEL, input_shape=(3, 8, 8), num_classes=3)
    shipped = model_registry.create_model("cnn", input_shape=(1, 28, 28), num_classes=10)
    expected = _refusal_message(shipped, "fc").replace("fc", "head")
    assert "output layer" in expected
    assert _refusal_message(mine, "head") == expected
    NoT(layers=("stem",)).validate(mine)  # the first layer is fine
    federation = federation_from_clients(
        [synthetic_images(20, shape=(3, 8, 8), seed=k) for k in range(3)],
        synthetic_images(12, shape=(3, 8, 8)),
    )
    exp = Experiment(_config(), 0, federation=federation)
    with pytest.raises(ConfigError, match=r"NoT cannot negate head \(the output layer\)"):
        exp.unlearn(exp.initial_state, REQUEST, create_unlearner("not", {"layers": ["head"]}))


def test_helpers_are_exported_from_fednot_data() -> None:
    for name in ("image_set", "as_splits", "federation_from_clients", "partition_dataset"):
        assert name in fednot.data.__all__ and callable(getattr(fednot.data, name))


def test_imagefolder_rescales_16_bit_greyscale_instead_of_clipping_it_to_white(
    tmp_path: Path,
) -> None:
    wide = (pattern(5, (4, 4)).astype(np.uint16) * 257).astype(np.uint16)  # 8-bit values x 257
    for name in ("cat", "dog"):
        for i in range(2):
            path = tmp_path / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(wide).save(path)  # PIL mode I;16
    images = read_imagefolder(tmp_path).train.images
    assert images.shape[1] == 1  # still greyscale
    assert torch.equal(images[0, 0], torch.from_numpy(pattern(5, (4, 4))))  # was all 255
    floats = Image.fromarray(np.zeros((4, 4), dtype=np.float32))  # mode F: no known range
    with pytest.raises(DataError, match="floating-point ones"):
        _eight_bit(floats, tmp_path / "f.tiff")
