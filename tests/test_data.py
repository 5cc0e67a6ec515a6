"""Partitioners, the federation built from them, preprocessing and forget splits."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.config import DataConfig
from fednot.configio import load_config, to_toml
from fednot.data import partition as P
from fednot.data.forget import split_request
from fednot.data.registry import build_federation, load_federation, make_partition, read_dataset
from fednot.data.source import DatasetSplits
from fednot.errors import ConfigError
from fednot.seeding import SeedStreams
from fednot.testing import synthetic_images, tiny_federation
from fednot.types import ForgetRequest


def _covers(parts: list[np.ndarray], n: int) -> bool:
    joined = np.concatenate(parts)
    return len(joined) == n and len(np.unique(joined)) == n


def test_iid_is_shuffled_balanced_and_disjoint() -> None:
    parts = P.iid(103, 10, np.random.default_rng(0))
    assert _covers(parts, 103)
    assert {len(p) for p in parts} == {10, 11}
    assert not np.array_equal(parts[0], np.arange(len(parts[0])))  # not contiguous blocks


def test_dirichlet_is_seeded_and_skewed() -> None:
    labels = np.repeat(np.arange(10), 100)
    a = P.dirichlet(labels, 10, 0.1, np.random.default_rng(1))
    b = P.dirichlet(labels, 10, 0.1, np.random.default_rng(1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert _covers(a, 1000) and min(len(p) for p in a) >= 10
    classes_per_client = [len(np.unique(labels[p])) for p in a]
    iid_like = P.dirichlet(labels, 10, 1000.0, np.random.default_rng(1))
    assert np.mean(classes_per_client) < np.mean([len(np.unique(labels[p])) for p in iid_like])


def test_dirichlet_gives_up_with_a_clear_error() -> None:
    labels = np.repeat(np.arange(2), 30)  # two classes, nearly all in one client each
    with pytest.raises(ConfigError, match="fewer than 15 samples"):
        P.dirichlet(labels, 3, 0.001, np.random.default_rng(0), min_samples=15, max_tries=5)


def test_shards_give_each_client_few_labels() -> None:
    labels = np.repeat(np.arange(10), 50)
    parts = P.shards(labels, 10, 2, np.random.default_rng(0))
    assert _covers(parts, 500)
    assert max(len(np.unique(labels[p])) for p in parts) <= 2


def test_partition_of_a_run_is_seeded_and_split_80_20(tmp_path: Path) -> None:
    splits = DatasetSplits("synthetic", synthetic_images(500, num_classes=5), None)
    config = DataConfig(dataset="mnist5k", num_clients=4)
    a = make_partition(config, splits, SeedStreams(0))
    b = make_partition(config, splits, SeedStreams(0))
    c = make_partition(config, splits, SeedStreams(1))
    assert all(np.array_equal(x, y) for x, y in zip(a.train, b.train, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a.train, c.train, strict=True))
    assert a.test is not None and len(a.test) == 100  # stratified 20 % hold-out
    for train, val in zip(a.train, a.val, strict=True):
        assert len(val) == round(0.2 * (len(train) + len(val)))
        assert not set(train) & set(val) and not set(train) & set(a.test)
    path = tmp_path / "partition.json"
    a.save(path)
    loaded = P.Partition.load(path)
    assert all(np.array_equal(x, y) for x, y in zip(a.val, loaded.val, strict=True))
    federation = build_federation(config, splits, loaded)
    assert federation.ids == (0, 1, 2, 3) and len(federation.test) == 100


def test_client_samples_caps_each_share_with_a_seeded_subset() -> None:
    splits = DatasetSplits("synthetic", synthetic_images(500, num_classes=5), None)
    full = make_partition(DataConfig(num_clients=4), splits, SeedStreams(0))
    capped = make_partition(DataConfig(num_clients=4, client_samples=30), splits, SeedStreams(0))
    again = make_partition(DataConfig(num_clients=4, client_samples=30), splits, SeedStreams(0))
    for k in range(4):
        share = set(full.train[k]) | set(full.val[k])
        kept = set(capped.train[k]) | set(capped.val[k])
        assert len(kept) == 30 and kept < share  # a subset of the client's own share
        assert len(capped.val[k]) == 6  # the 80:20 split applies to what is kept
        assert np.array_equal(capped.train[k], again.train[k])
    assert capped.test is not None and np.array_equal(capped.test, full.test)  # test unchanged


def test_holdout_test_takes_the_test_set_from_the_training_split() -> None:
    train = synthetic_images(500, num_classes=5)
    own_test = synthetic_images(100, num_classes=5, seed=1)
    splits = DatasetSplits("synthetic", train, own_test)
    plain, held = DataConfig(num_clients=4), DataConfig(num_clients=4, holdout_test=True)
    reported = build_federation(plain, splits, make_partition(plain, splits, SeedStreams(0)))
    assert reported.test.source is own_test  # a control: the data set's own test split
    partition = make_partition(held, splits, SeedStreams(0))
    federation = build_federation(held, splits, partition)
    assert federation.test.source is train and federation.test.source is not own_test
    assert partition.test is not None and len(partition.test) == 100  # stratified 20 % of 500
    clients = np.concatenate([*partition.train, *partition.val])
    assert not set(clients.tolist()) & set(partition.test.tolist())
    assert len(clients) + len(partition.test) == 500  # the rest of the training split
    assert federation.fingerprint() != reported.fingerprint()  # and so the cache keys
    other = make_partition(held, splits, SeedStreams(1))  # another seed holds out other samples
    assert other.test is not None and not np.array_equal(other.test, partition.test)
    with pytest.raises(ConfigError, match="data.holdout_test is set"):
        build_federation(held, splits, make_partition(plain, splits, SeedStreams(0)))


def test_holdout_test_reaches_the_cache_keys_and_round_trips(tmp_path: Path) -> None:
    config = load_config(overrides=["data.holdout_test=true", "data.num_clients=3"])
    assert config.data.holdout_test
    path = tmp_path / "c.toml"
    path.write_text(to_toml(config))
    assert load_config(path) == config
    plain = replace(config, data=replace(config.data, holdout_test=False))
    # mnist5k has no test split: the same samples, but a key of its own all the same
    assert Experiment(config, 0).cache_key("pretrain") != Experiment(plain, 0).cache_key("pretrain")
    # off (the default), the option is not in the key: models cached before it existed are found
    parts = Experiment(plain, 0)._key_parts()  # noqa: SLF001 - what the key hashes
    assert "holdout_test" not in parts["data"] and parts["data"]["num_clients"] == 3
    with pytest.raises(ConfigError, match="holdout_test"):
        load_config(overrides=['data.holdout_test="yes"'])


def test_embedded_mnist5k_federation() -> None:
    federation, partition = load_federation(DataConfig(), SeedStreams(0))
    assert federation.input_shape == (1, 28, 28) and federation.num_classes == 10
    assert len(federation.test) == 1000
    assert sum(len(c.train) for c in federation.clients) == 3200
    assert partition.scheme == "iid"


def test_reading_files_without_a_root_is_a_clear_error() -> None:
    with pytest.raises(
        ConfigError, match="set data.root to the folder that holds cifar-10-batches-py"
    ):
        read_dataset("cifar10", None, None)
    with pytest.raises(ConfigError, match="Unknown data set 'cifar11'"):
        read_dataset("cifar11", None, None)


def test_preprocess_normalises_and_augments_reproducibly() -> None:
    federation = tiny_federation()
    prep = federation.preprocess
    images = federation.clients[0].train.source.images
    x = prep(images)
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-2

    aug = replace(prep, augment=True, flip=True, pad=2)
    a = aug(images[:8], torch.Generator().manual_seed(0))
    b = aug(images[:8], torch.Generator().manual_seed(0))
    assert a.shape == x[:8].shape and torch.equal(a, b) and not torch.equal(a, x[:8])
    assert torch.equal(aug(images[:8]), x[:8])  # no generator, no augmentation (evaluation)


def test_client_wise_split() -> None:
    federation = tiny_federation()
    split = split_request(federation, ForgetRequest(clients=(1,)))
    assert split.retained.ids == (0, 2)
    assert torch.equal(split.forget.indices, federation.client(1).train.indices)
    assert len(split.retain) == len(federation.client(0).train) + len(federation.client(2).train)


def test_class_wise_split_holds_exactly_the_targets_samples_of_that_class() -> None:
    federation = tiny_federation()
    split = split_request(federation, ForgetRequest(clients=(0,), classes=(2,)))
    target = federation.client(0).train
    expected = target.indices[target.labels == 2]
    assert torch.equal(split.forget.indices, expected) and len(expected) > 0
    kept = split.retained.client(0).train
    assert not bool((kept.labels == 2).any()) and len(kept) + len(expected) == len(target)
    assert split.retained.ids == (0, 1, 2)  # the target stays to recover on its retained data


def test_instance_wise_split_and_foreign_samples() -> None:
    federation = tiny_federation()
    mine = federation.client(0).train.indices[:5].tolist()
    split = split_request(federation, ForgetRequest(clients=(0,), indices=tuple(mine)))
    assert sorted(split.forget.indices.tolist()) == sorted(mine)
    theirs = int(federation.client(1).train.indices[0])
    with pytest.raises(ConfigError, match="can only ask to forget its own data"):
        split_request(federation, ForgetRequest(clients=(0,), indices=(*mine, theirs)))
