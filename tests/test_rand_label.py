"""RandL: fine-tuning on randomly relabelled forget data (Golatkar et al. 2020; SalUn's RL)."""

from __future__ import annotations

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.data.federated import Samples
from fednot.data.source import ImageSet
from fednot.errors import ConfigError, UnsupportedScenarioError
from fednot.federation.costs import FlopMeter
from fednot.federation.outcome import UnlearnOutcome
from fednot.testing import centralized_experiment, tiny_config, tiny_federation
from fednot.types import StateDict
from fednot.unlearning.centralized.rand_label import (
    RandL,
    check_mask,
    epoch_batches,
    fetch_joint,
    random_labels,
    restore_masked,
    train_random_labels,
)
from fednot.unlearning.registry import unlearner_class

NUM_CLASSES = 4


def _run(method: RandL, seed: int = 0) -> tuple[Experiment, UnlearnOutcome]:
    exp = centralized_experiment(seed)
    return exp, exp.unlearn(exp.initial_state, exp.scenario.request, method)


def _numbered(count: int, labels: torch.Tensor | None = None) -> ImageSet:
    """Images whose one pixel is the sample's number: batches show which samples they hold."""
    images = torch.arange(count, dtype=torch.uint8).view(count, 1, 1, 1)
    labels = torch.arange(count) % NUM_CLASSES if labels is None else labels
    return ImageSet(images, labels, tuple(str(c) for c in range(NUM_CLASSES)))


def _views(forget: int = 6, retain: int = 10) -> tuple[Samples, Samples, ImageSet]:
    pool = _numbered(forget + retain)
    ids = torch.arange(forget + retain)
    return Samples(pool, ids[:forget]), Samples(pool, ids[forget:]), pool


# -- pure pieces ------------------------------------------------------------------------------


def test_random_labels_are_uniform_over_all_classes() -> None:
    draws = random_labels(8000, NUM_CLASSES, torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=NUM_CLASSES).double() / len(draws)
    assert draws.dtype == torch.int64 and len(counts) == NUM_CLASSES
    assert torch.allclose(counts, torch.full((NUM_CLASSES,), 0.25, dtype=torch.float64), atol=0.02)


def test_fetch_joint_keeps_the_order_across_two_sources() -> None:
    first = Samples(_numbered(3), torch.tensor([0, 1, 2]))
    second_pool = ImageSet(
        torch.tensor([50, 51, 52, 53], dtype=torch.uint8).view(4, 1, 1, 1),
        torch.tensor([3, 2, 1, 0]),
        tuple("0123"),
    )
    second = Samples(second_pool, torch.tensor([1, 3]))  # images 51, 53
    images, labels, in_first = fetch_joint(first, second, torch.tensor([4, 0, 3, 2]))
    assert images.flatten().tolist() == [53, 0, 51, 2]
    assert labels.tolist() == [0, 0, 2, 2]
    assert in_first.tolist() == [False, True, False, True]


@pytest.mark.parametrize("mode", ["merged", "alternating"])
def test_forget_labels_are_random_and_retain_labels_true(mode: str) -> None:
    forget, retain, pool = _views()
    generator = torch.Generator().manual_seed(0)
    seen: dict[int, set[int]] = {i: set() for i in range(len(pool))}
    for _ in range(60):
        ids: list[int] = []
        for images, labels in epoch_batches(
            forget,
            retain,
            num_classes=NUM_CLASSES,
            batch_size=4,
            mode=mode,  # type: ignore[arg-type]
            generator=generator,
        ):
            for i, y in zip(images.flatten().tolist(), labels.tolist(), strict=True):
                seen[i].add(y)
                ids.append(i)
        assert sorted(ids) == list(range(len(pool)))  # one pass over D_f ∪ D_r per epoch
    for i in forget.indices.tolist():
        assert seen[i] == set(range(NUM_CLASSES))  # every class, the true label included
    for i in retain.indices.tolist():
        assert seen[i] == {int(pool.labels[i])}


def test_merged_mode_shuffles_forget_and_retain_together() -> None:
    forget, retain, _ = _views()
    batches = list(
        epoch_batches(
            forget,
            retain,
            num_classes=NUM_CLASSES,
            batch_size=4,
            mode="merged",
            generator=torch.Generator().manual_seed(1),
        )
    )
    kinds = [set((images.flatten() < len(forget)).tolist()) for images, _ in batches]
    assert any(kind == {True, False} for kind in kinds)


def test_alternating_mode_is_one_pass_over_forget_then_retain() -> None:
    forget, retain, _ = _views(forget=6, retain=10)
    batches = list(
        epoch_batches(
            forget,
            retain,
            num_classes=NUM_CLASSES,
            batch_size=4,
            mode="alternating",
            generator=torch.Generator().manual_seed(1),
        )
    )
    sizes = [len(labels) for _, labels in batches]
    assert sizes == [4, 2, 4, 4, 2]
    firsts = [bool((images.flatten() < 6).all()) for images, _ in batches]
    assert firsts == [True, True, False, False, False]


# -- the mask (SalUn's masked RandL) ----------------------------------------------------------


def _train(mask: dict[str, torch.Tensor] | None, seed: int = 0) -> tuple[StateDict, StateDict]:
    exp = centralized_experiment()
    split = exp.split(exp.scenario.request)
    state = exp.initial_state
    run = train_random_labels(
        exp.model,
        state,
        split.forget,
        split.retained.pooled_train(),
        exp.federation.preprocess,
        num_classes=NUM_CLASSES,
        epochs=2,
        lr=0.1,
        generator=torch.Generator().manual_seed(seed),
        flops=FlopMeter(exp.model),
        weight_decay=0.01,
        batch_size=8,
        mask=mask,
    )
    return state, run.state


def test_mask_leaves_masked_out_weights_bit_identical() -> None:
    exp = centralized_experiment()
    params = dict(exp.model.named_parameters())
    first, *others = list(params)
    generator = torch.Generator().manual_seed(3)
    mask = {k: (torch.rand(params[k].shape, generator=generator) < 0.5).float() for k in others}
    start, out = _train(mask)
    for name in others:
        frozen = mask[name] == 0
        assert torch.equal(out[name][frozen], start[name][frozen]), name
        assert not torch.equal(out[name][~frozen], start[name][~frozen]), name
    assert not torch.equal(out[first], start[first])  # absent from the mask: trains freely


def test_all_ones_mask_equals_no_mask() -> None:
    exp = centralized_experiment()
    ones = {k: torch.ones_like(p) for k, p in exp.model.named_parameters()}
    _, masked = _train(ones)
    _, plain = _train(None)
    assert all(torch.equal(masked[k], plain[k]) for k in plain)


def test_restore_masked_resets_weights_and_zeroes_their_momentum() -> None:
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
    start = {"weight": torch.tensor([[-1.0, -2.0]])}
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    layer(torch.ones(1, 2)).sum().backward()
    optimizer.step()  # weight = (0.9, 1.9), momentum buffer = (1, 1)
    restore_masked(layer, {"weight": torch.tensor([[1.0, 0.0]])}, start, optimizer)
    assert layer.weight.tolist() == [[pytest.approx(0.9), -2.0]]
    assert optimizer.state[layer.weight]["momentum_buffer"].tolist() == [[1.0, 0.0]]


def test_check_mask_rejects_unknown_names_and_shapes() -> None:
    model = centralized_experiment().model
    name, param = next(iter(model.named_parameters()))
    check_mask(model, {name: torch.ones_like(param)})
    with pytest.raises(ConfigError, match="'nope'"):
        check_mask(model, {"nope": torch.ones(2)})
    with pytest.raises(ConfigError, match=name):
        check_mask(model, {name: torch.ones(3)})


# -- the method through the engine ------------------------------------------------------------


def test_end_to_end_keeps_shapes_dtypes_and_counts_flops() -> None:
    exp, outcome = _run(RandL(epochs=2, batch_size=10))
    assert set(outcome.state) == set(exp.initial_state)
    for key, value in exp.initial_state.items():
        assert outcome.state[key].shape == value.shape and outcome.state[key].dtype == value.dtype
    assert not outcome.log.rounds  # schedule "none": no recovery
    assert outcome.step_costs.comm_bytes == 0
    meter = exp.flops
    per_epoch = 3 * meter.train_step((10, 1, 8, 8)) + meter.train_step((2, 1, 8, 8))  # 32 samples
    assert outcome.step_costs.flops == 2 * per_epoch
    assert outcome.notes == {"steps": 8, "forget_samples": 8, "retain_samples": 24}
    metrics = exp.evaluate(outcome.state)
    assert 0 <= metrics.forget_acc <= 100


def test_same_seed_same_output_and_mode_matters() -> None:
    method = RandL(epochs=2, batch_size=8)
    _, first = _run(method)
    _, second = _run(method)
    assert all(torch.equal(first.state[k], second.state[k]) for k in first.state)
    _, alternating = _run(RandL(epochs=2, batch_size=8, mode="alternating"))
    assert any(not torch.equal(first.state[k], alternating.state[k]) for k in first.state)


def test_refuses_federated_scenarios() -> None:
    exp = Experiment(tiny_config(), 0, federation=tiny_federation())
    with pytest.raises(UnsupportedScenarioError, match="centralized"):
        exp.unlearn(exp.initial_state, exp.scenario.request, RandL())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epochs": 0}, "`epochs` to be a positive int, got 0"),
        ({"batch_size": 2.5}, "`batch_size` to be a positive int"),
        ({"lr": -1.0}, "`lr` to be a positive float, got -1.0"),
        ({"momentum": -0.1}, "`momentum` to be a non-negative float"),
        ({"mode": "mixed"}, "`mode` to be one of \\['merged', 'alternating'\\], got 'mixed'"),
    ],
)
def test_hyperparameters_are_validated(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RandL(**options)  # type: ignore[arg-type]


def test_registered_with_its_defaults() -> None:
    assert unlearner_class("randl") is RandL
    method = RandL()
    assert (method.title, method.requirements.forget_data) == ("RandL", True)
    assert method.options() == {
        "epochs": 10,
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 256,
        "mode": "merged",
    }
