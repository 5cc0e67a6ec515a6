"""The opt-in training history, the server's data slice, and stopping at Retrain's accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.config import DataConfig, UnlearnConfig
from fednot.data.federated import UnlabeledSamples
from fednot.data.registry import build_federation, make_partition
from fednot.data.source import DatasetSplits
from fednot.errors import ConfigError, MissingRequirementError
from fednot.federation.costs import state_bytes
from fednot.federation.history import HistorySpec, TrainingHistory
from fednot.seeding import SeedStreams
from fednot.testing import synthetic_images, tiny_config, tiny_federation
from fednot.types import ForgetRequest


def _trained(spec: HistorySpec, rounds: int = 3):  # type: ignore[no-untyped-def]
    config = tiny_config(train=tiny_config().train.__class__(rounds=rounds, batch_size=8))
    exp = Experiment(config, 0, federation=tiny_federation())
    return exp, exp.pretrain(history=spec)


def test_snapshots_every_delta_t_rounds_replay_fedavg() -> None:
    exp, trained = _trained(HistorySpec(every=2), rounds=5)
    history = trained.history
    assert [s.round for s in history.snapshots] == [1, 3, 5]
    # FedAvg: the next global model is the start plus the weighted mean of the updates
    snap = history.snapshots[-1]
    total = sum(snap.weights.values())
    for name, start in snap.global_state.items():
        if start.is_floating_point():
            step = sum(snap.updates[k][name] * (w / total) for k, w in snap.weights.items())
            assert torch.allclose(start + step, trained.state[name], atol=1e-6)


def test_update_sums_and_last_local_models() -> None:
    spec = HistorySpec(every=1, last_local_models=True, update_sums=True)
    exp, trained = _trained(spec)
    history = trained.history
    for k in (0, 1, 2):
        expected = {}
        for snap in history.snapshots:
            p = snap.weights[k] / sum(snap.weights.values())
            for name, u in snap.updates[k].items():
                expected[name] = expected.get(name, 0) + p * u
        for name, value in expected.items():
            assert torch.allclose(history.update_sums[k][name], value, atol=1e-6)
        last = history.snapshots[-1]
        for name, u in last.updates[k].items():
            local = history.last_local[k][name]
            assert torch.allclose(local - history.last_start[k][name], u, atol=1e-6)


def test_restrict_hands_over_only_the_declared_parts() -> None:
    exp, trained = _trained(HistorySpec(every=1, last_local_models=True, update_sums=True), 4)
    only_sums = trained.history.restrict(HistorySpec(update_sums=True))
    assert not only_sums.snapshots and not only_sums.last_local and only_sums.update_sums
    every_two = trained.history.restrict(HistorySpec(every=2))
    assert [s.round for s in every_two.snapshots] == [1, 3] and not every_two.update_sums
    float_bytes = sum(
        t.numel() * t.element_size() for t in trained.state.values() if t.is_floating_point()
    )
    assert only_sums.storage_bytes() == 3 * float_bytes
    assert every_two.storage_bytes() == 2 * (state_bytes(trained.state) + 3 * float_bytes)


def test_history_survives_the_cache(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = HistorySpec(every=2, update_sums=True)
    config = tiny_config(cache_dir=str(tmp_path))
    first = Experiment(config, 0, federation=tiny_federation()).pretrain(history=spec)
    again = Experiment(config, 0, federation=tiny_federation()).pretrain(history=spec)
    assert again.cached
    restored = TrainingHistory.from_payload(first.history.to_payload())
    assert [s.round for s in again.history.snapshots] == [s.round for s in restored.snapshots]
    for k, value in first.history.update_sums.items():
        assert all(torch.equal(value[n], again.history.update_sums[k][n]) for n in value)
    plain = Experiment(config, 0, federation=tiny_federation()).pretrain()
    assert not plain.cached and plain.history is None  # another cache entry
    assert all(torch.equal(plain.state[n], first.state[n]) for n in plain.state)  # same model


def test_spec_union() -> None:
    union = HistorySpec(every=4).union(HistorySpec(every=6, update_sums=True))
    assert union == HistorySpec(every=2, update_sums=True)
    assert HistorySpec().empty and not union.empty


def test_server_slice_is_reserved_before_the_clients_split() -> None:
    splits = DatasetSplits("synthetic", synthetic_images(400, num_classes=4), None)
    config = DataConfig(num_clients=4, server_samples=50)
    partition = make_partition(config, splits, SeedStreams(0))
    assert len(partition.server) == 50
    held = np.concatenate([*partition.train, *partition.val, partition.test])
    assert not set(partition.server) & set(held)
    assert len(held) + 50 == 400
    federation = build_federation(config, splits, partition)
    assert federation.server is not None and len(federation.server) == 50


def test_server_data_is_unlabeled() -> None:
    federation = tiny_federation()
    view = UnlabeledSamples(federation.test.source, federation.test.indices[:5])
    images, labels = view.fetch(torch.arange(5))
    assert images.shape[0] == 5 and bool((labels == -1).all())
    with pytest.raises(MissingRequirementError, match="unlabeled"):
        _ = view.labels


def test_stop_at_retrains_validation_accuracy() -> None:
    config = tiny_config(unlearn=UnlearnConfig(recovery_rounds=6, target_val_acc="retrain"))
    exp = Experiment(config, 0, federation=tiny_federation())
    trained = exp.pretrain()
    request = ForgetRequest(clients=(0,))
    with pytest.raises(ConfigError, match="needs Retrain's validation accuracy"):
        exp.unlearn(trained, request, "ft")
    outcome = exp.unlearn(trained, request, "ft", reference_val_acc=0.0)
    assert len(outcome.log.rounds) == 1 and "target" in outcome.log.stop_reason
