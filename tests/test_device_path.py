"""The device data path: pixels moved once to where the model computes (`Federation.on_device`).

On a GPU the pixels live on the device and batches are gathered, augmented and normalised there;
on the CPU the same path must give the same models as the host path, bit for bit.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.benchmark.runner import create_methods, history_union
from fednot.config import ModelConfig
from fednot.data.federated import ForbiddenSamples, Samples, UnlabeledSamples
from fednot.errors import MissingRequirementError
from fednot.testing import every_method_config, forbid_clients, tiny_config, tiny_federation

torch.set_num_threads(1)


def test_on_device_copies_the_pixel_sets_and_keeps_every_view_and_rule() -> None:
    fed = forbid_clients(tiny_federation(3, server_size=16), (2,))
    fed = replace(fed, server=UnlabeledSamples(fed.server.source, fed.server.indices))
    moved = fed.on_device("cpu")
    assert moved.test.source is not fed.test.source  # a copy of the set, not of each view
    assert moved.clients[0].train.source is moved.clients[1].val.source is moved.test.source
    for old, new in zip(fed.clients, moved.clients, strict=True):
        assert torch.equal(old.train.indices, new.train.indices)
        assert type(old.train) is type(new.train) and type(old.val) is type(new.val)
    assert isinstance(moved.clients[2].train, ForbiddenSamples)
    with pytest.raises(MissingRequirementError):
        moved.clients[2].train.fetch(torch.arange(2))
    assert isinstance(moved.server, UnlabeledSamples)
    assert isinstance(moved.test, Samples) and moved.fingerprint() == fed.fingerprint()
    images, labels = moved.clients[0].train.fetch(torch.arange(5))
    expected = fed.clients[0].train.fetch(torch.arange(5))
    assert torch.equal(images, expected[0]) and torch.equal(labels, expected[1])


@pytest.mark.parametrize("augment", [False, True])
def test_the_device_path_on_the_cpu_gives_the_models_of_the_host_path(augment: bool) -> None:
    base = tiny_federation(3, server_size=16)
    fed = replace(base, preprocess=replace(base.preprocess, augment=augment))
    config = every_method_config(
        tiny_config(model=ModelConfig(name="cnn", options={"channels": (4, 8)}))
    )
    results = []
    for federation in (fed, fed.on_device("cpu")):
        exp = Experiment(config, seed=0, federation=federation)
        trained = exp.pretrain(history=history_union(create_methods(config).values()))
        request = exp.scenario.request
        states = {m: exp.unlearn(trained, request, m).state for m in ("ft", "fukd", "pgd", "fcu")}
        results.append((trained.state, states, exp.evaluate(states["fcu"])))
    (plain, plain_states, plain_metrics), (moved, moved_states, moved_metrics) = results
    assert all(torch.equal(plain[k], moved[k]) for k in plain)
    for method, state in plain_states.items():
        assert all(torch.equal(state[k], moved_states[method][k]) for k in state), method
    assert plain_metrics == moved_metrics
