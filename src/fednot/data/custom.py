"""Your own data as fednot's federations.

`image_set` (`fednot.data.convert`) turns one data set, in any form a user holds it (an
`ImageSet`, an ``(images, labels)`` pair of tensors or NumPy arrays, a map-style torch
``Dataset`` of ``(image, label)`` samples), into a ``uint8`` `ImageSet`. From there:

- `as_splits`: a training and an optional test set, as a ``data.dataset`` loader returns them;
- `federation_from_clients`: one data set per client, as the user already has them;
- `partition_dataset`: one data set split among clients by ``data.partition``, exactly as
  `fednot.benchmark.experiment.Experiment` splits it with the same seed.

The federations feed ``Experiment(config, seed, federation=...)``; docs/data.md has an example.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

import fednot.data.partition as partitioners
from fednot.config import DataConfig
from fednot.data.convert import image_set, read_raw, settle
from fednot.data.federated import ClientData, Federation, Preprocess, Samples
from fednot.data.partition import Partition
from fednot.data.source import DatasetSplits, ImageSet
from fednot.data.splits import as_splits
from fednot.errors import ConfigError
from fednot.seeding import SeedStreams

__all__ = ["as_splits", "federation_from_clients", "image_set", "partition_dataset"]


def federation_from_clients(
    clients: Sequence[object],
    test: object,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    augment: bool = False,
    flip: bool = False,
) -> Federation:
    """A federation from one data set per client (client ids 0, 1, ... in order) and a test set.

    Each client's data is split into train and validation with fednot's seeded
    ``train_val_split`` (stream ``partition/val/<id>`` of `SeedStreams(seed)`, as for a
    partitioned data set); the per-channel normalisation is fitted on all clients' data.

    Args:
        clients: each client's data, in any form `image_set` accepts.
        test: the server's test set, in any such form.
        val_fraction: each client's validation share, in (0, 1).
        seed: the seed of the train/validation split.
        augment: random-crop augmentation (zero padding of 4 pixels) during training.
        flip: with ``augment``, also random horizontal flips (not for digits or text).

    Returns:
        A `Federation` to pass to ``Experiment(config, seed, federation=...)``; set
        ``data.num_clients`` to ``len(clients)`` in that configuration.

    Raises:
        ConfigError: on no clients, a bad ``val_fraction``, or a client left without training
            data.
        DataError: as `image_set`, or if the sets differ in image shape or class count.
    """
    if isinstance(clients, str | bytes | Mapping) or not isinstance(clients, Sequence):
        raise ConfigError(f"Expected a sequence of client data sets, got {type(clients).__name__}.")
    if not clients:
        raise ConfigError("Expected at least one client data set, got none.")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must lie in (0, 1), got {val_fraction}.")
    raws = [read_raw(data, f"client {k}") for k, data in enumerate(clients)]
    *parts, test_set = settle([*raws, read_raw(test, "test set")])
    pool = ImageSet(
        torch.cat([part.images for part in parts]),
        torch.cat([part.labels for part in parts]),
        test_set.classes,
    )
    streams, start, views = SeedStreams(seed), 0, []
    for k, part in enumerate(parts):
        indices = np.arange(start, start + len(part))
        start += len(part)
        train, val = partitioners.train_val_split(
            indices, val_fraction, streams.numpy("partition", "val", k)
        )
        if len(train) == 0:
            raise ConfigError(
                f"client {k} holds {len(part)} samples and val_fraction={val_fraction} leaves "
                "none for training: give it more data or lower val_fraction."
            )
        views.append(
            ClientData(
                k, Samples(pool, torch.from_numpy(train)), Samples(pool, torch.from_numpy(val))
            )
        )
    preprocess = Preprocess.fit(pool.images, augment=augment, flip=flip)
    test_view = Samples(test_set, torch.arange(len(test_set)))
    return Federation(tuple(views), test_view, preprocess, pool.num_classes, pool.shape)


def partition_dataset(
    train: object,
    test: object = None,
    *,
    config: DataConfig | None = None,
    seed: int = 0,
) -> tuple[Federation, Partition]:
    """Split one data set among clients, seeded, exactly as `Experiment` would split it.

    Uses ``config``'s num_clients, partition (iid, dirichlet, shards), alpha, shards_per_client,
    min_client_samples, val_fraction, test_fraction (the hold-out when ``test`` is ``None`` or
    holdout_test is set), holdout_test, server_samples and augment, with the streams of
    `SeedStreams(seed)`, so the result equals the federation
    ``Experiment(RunConfig(data=config), seed)`` builds when ``data.dataset`` loads the same data.
    ``config.dataset`` only supplies augmentation defaults (none for mnist5k, the default, and for
    image folders and loaders); ``config.augment`` overrides them.

    Args:
        train: the training pool, in any form `image_set` accepts (or `DatasetSplits`).
        test: the test set, or ``None`` for a seeded, stratified hold-out of ``train`` (with
            ``config.holdout_test``, the hold-out is taken and ``test`` is never read).
        config: how to split (default: `DataConfig()`, 10 IID clients).
        seed: the run seed.

    Returns:
        The federation (for ``Experiment(config, seed, federation=...)``) and its partition.

    Raises:
        ConfigError: if the data cannot be split as configured.
        DataError: as `as_splits`.
    """
    from fednot.data.registry import build_federation, make_partition  # registry imports loaders

    config = config or DataConfig()
    if isinstance(train, DatasetSplits) and test is None:
        splits = train
    else:
        splits = as_splits((train, test), "custom")
    partition = make_partition(config, splits, SeedStreams(seed))
    return build_federation(config, splits, partition), partition
