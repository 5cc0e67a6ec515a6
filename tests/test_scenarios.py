"""Scenario construction: backdoor triggers, class-, instance-wise and centralized requests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.benchmark.scenarios import (
    BackdoorScenario,
    CentralizedScenario,
    ClassScenario,
    InstanceScenario,
    read_sample_ids,
)
from fednot.config import ScenarioSettings, UnlearnConfig
from fednot.data.backdoor import Trigger, poison, stamp, triggered_test_set
from fednot.errors import ConfigError, UnsupportedScenarioError
from fednot.testing import set_args, synthetic_images, tiny_config, tiny_federation


def _exp(scenario: ScenarioSettings, **sections: object) -> Experiment:
    return Experiment(tiny_config(scenario=scenario, **sections), 0, federation=tiny_federation())


def test_trigger_is_stamped_exactly_where_configured() -> None:
    images = torch.full((2, 3, 8, 10), 7, dtype=torch.uint8)
    out = stamp(images, Trigger(size=3, position=(-4, -4)))
    assert torch.equal(images, torch.full_like(images, 7))  # the input is not modified
    changed = (out != images).any(dim=(0, 1))
    patch = out[0, 0, 4:7, 6:9]
    assert torch.equal(
        patch, torch.tensor([[255, 0, 255], [0, 255, 0], [255, 0, 255]]).to(torch.uint8)
    )
    assert changed[4:7, 6:9].all() and changed.sum() == 9 - 0  # only inside the 3x3 window
    mask = torch.zeros(8, 10, dtype=torch.bool)
    mask[4:7, 6:9] = True
    assert torch.equal(out[:, :, ~mask], images[:, :, ~mask])
    assert torch.equal(out[:, 0], out[:, 2])  # every channel
    top_left = stamp(images, Trigger(size=2, position=(1, 2)))
    assert torch.equal(top_left[0, 1, 1:3, 2:4], torch.tensor([[255, 0], [0, 255]]).to(torch.uint8))


def test_trigger_must_fit() -> None:
    with pytest.raises(ConfigError, match="does not fit"):
        stamp(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), Trigger(size=3, position=(2, 0)))


def test_poison_relabels_only_the_chosen_samples() -> None:
    source = synthetic_images(20, num_classes=4)
    chosen = torch.tensor([1, 5, 7])
    poisoned = poison(source, chosen, Trigger(target_label=2))
    assert torch.equal(poisoned.labels[chosen], torch.full((3,), 2))
    others = torch.ones(20, dtype=torch.bool)
    others[chosen] = False
    assert torch.equal(poisoned.labels[others], source.labels[others])
    assert torch.equal(poisoned.images[others], source.images[others])
    triggered = triggered_test_set(source, Trigger(target_label=2))
    assert not bool((triggered.labels == 2).any()) and len(triggered) == int(
        (source.labels != 2).sum()
    )


def test_backdoor_scenario_poisons_the_malicious_client_only() -> None:
    exp = _exp(BackdoorScenario(poison_fraction=0.5, target_label=1))
    clean = tiny_federation()
    target = exp.federation.client(0).train
    changed = (target.labels != clean.client(0).train.labels).sum()
    assert 0 < changed <= 16 and bool(
        (target.labels[target.labels != clean.client(0).train.labels] == 1).all()
    )
    for k in (1, 2):
        assert torch.equal(exp.federation.client(k).train.labels, clean.client(k).train.labels)
    images, _ = exp.federation.test.fetch(torch.arange(len(exp.federation.test)))
    assert torch.equal(images, clean.test.fetch(torch.arange(len(clean.test)))[0])  # clean test
    assert exp.scenario.request.clients == (0,) and exp.scenario.request.kind == "client"
    metrics = exp.evaluate(exp.initial_state)
    asr = metrics.get("asr")
    assert asr is not None and 0 <= asr <= 100


def test_instance_wise_request_has_the_requested_size_and_is_seeded() -> None:
    scenario = InstanceScenario(forget_ratio=0.25)
    unlearn = UnlearnConfig(forget_clients=(0, 2), recovery_rounds=1)
    a = _exp(scenario, unlearn=unlearn).scenario.request
    b = _exp(scenario, unlearn=unlearn).scenario.request
    assert a == b and len(a.indices) == 2 * 8  # 25 % of each target's 32 training samples
    held = set(tiny_federation().client(0).train.indices.tolist()) | set(
        tiny_federation().client(2).train.indices.tolist()
    )
    assert set(a.indices) <= held
    other = Experiment(
        tiny_config(scenario=scenario, unlearn=unlearn), 1, federation=tiny_federation()
    )
    assert other.scenario.request.indices != a.indices


def test_instance_wise_ids_from_a_file(tmp_path: Path) -> None:
    ids = tiny_federation().client(0).train.indices[:3].tolist()
    path = tmp_path / "ids.txt"
    path.write_text("# forget these\n" + "\n".join(map(str, ids)) + "\n")
    exp = _exp(InstanceScenario(forget_ids=str(path)))
    assert exp.scenario.request.indices == tuple(ids)
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    assert read_sample_ids(tmp_path / "ids.json") == tuple(ids)
    (tmp_path / "bad.txt").write_text("1\nzwei\n")
    with pytest.raises(ConfigError, match="one integer per line"):
        read_sample_ids(tmp_path / "bad.txt")


def test_class_wise_metrics_and_scope() -> None:
    target = _exp(ClassScenario(classes=(1,)))
    assert target.scenario.request.clients == (0,)
    everyone = _exp(ClassScenario(classes=(1,), class_scope="federation"))
    assert everyone.scenario.request.clients == (0, 1, 2)
    metrics = everyone.evaluate(everyone.pretrain().state)
    assert metrics.get("forget_class_acc") is not None
    assert metrics.get("remaining_class_test_acc") is not None


def test_centralized_scenario_needs_one_holder_and_sends_nothing() -> None:
    with pytest.raises(ConfigError, match="data.num_clients = 1"):
        tiny_config(scenario=CentralizedScenario())
    config = tiny_config(
        num_clients=1,
        scenario=CentralizedScenario(forget_ratio=0.25),
        unlearn=UnlearnConfig(forget_clients=(0,), recovery_rounds=2),
    )
    exp = Experiment(config, 0, federation=tiny_federation(num_clients=1))
    request = exp.scenario.request
    assert request.kind == "instance" and len(request.indices) == 8
    outcome = exp.unlearn(exp.pretrain(), request, "not")
    assert outcome.costs.comm_bytes == 0 and outcome.costs.flops > 0
    with pytest.raises(UnsupportedScenarioError, match="does not apply to the centralized"):
        from fednot.unlearning.pgd import PGD

        exp.unlearn(exp.pretrain(), request, PGD())


SMOKE = [
    "--seeds",
    "0",
    "--methods",
    "retrain,ft,not,federaser,ga",
    *set_args(
        "model.name=mlp",
        "model.options.hidden=[16]",
        "train.rounds=1",
        "train.batch_size=128",
        "unlearn.recovery_rounds=1",
        "data.server_samples=0",
        "cache_dir=",
        "save_models=false",
    ),
    "-q",
    *set_args(
        "eval.mia_repeats=2",
        "eval.mia_null_permutations=0",
    ),
]


@pytest.mark.parametrize(
    ("scenario", "applicable", "extra"),
    [
        ("client", {"retrain", "ft", "not", "federaser"}, []),
        ("class", {"retrain", "ft", "not"}, []),
        ("instance", {"retrain", "ft", "not"}, []),
        ("backdoor", {"retrain", "ft", "not", "federaser"}, []),
        ("noniid", {"retrain", "ft", "not", "federaser"}, ["--set", "data.min_client_samples=5"]),
        ("centralized", {"retrain", "ft", "not", "ga"}, []),
    ],
)
def test_bench_serves_every_scenario(
    tmp_path: Path, scenario: str, applicable: set[str], extra: list[str]
) -> None:
    from fednot.cli.app import main

    out = tmp_path / scenario
    assert main(["bench", "--scenario", scenario, *SMOKE, *extra, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    methods = {r["method"] for r in results["records"]} - {"original", "retrain_prime"}
    assert methods == applicable
    assert (
        set(results["not_applicable"]) == {"retrain", "ft", "not", "federaser", "ga"} - applicable
    )
    assert all(
        r["scenario"] == scenario if scenario != "noniid" else r["scenario"] == "client"
        for r in results["records"]
    )
    table = (out / "results.md").read_text()
    for name in results["not_applicable"]:
        assert f"| {name} | not applicable" in table
    if scenario == "backdoor":
        assert all(r["asr"] is not None for r in results["records"])
        assert "ASR (backdoor)" in table
    if scenario == "class":
        assert all(r["forget_class_acc"] is not None for r in results["records"])


def test_backdoor_pretraining_never_reuses_a_clean_cached_model(tmp_path: Path) -> None:
    """The cache key sees the poisoned pixels and labels, not only which samples clients hold."""
    cache = {"cache_dir": str(tmp_path)}
    clean = _exp(ScenarioSettings(), **cache)
    assert not clean.pretrain().cached
    assert _exp(ScenarioSettings(), **cache).pretrain().cached  # the cache works
    backdoor = _exp(BackdoorScenario(poison_fraction=0.5, target_label=1), **cache)
    assert backdoor.federation.fingerprint() != clean.federation.fingerprint()
    assert not backdoor.pretrain().cached
