"""SalUn: the saliency mask by hand, only masked weights move, ratio 1.0 is RandL."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fednot.benchmark.experiment import Experiment
from fednot.config import UnlearnConfig
from fednot.errors import ConfigError, UnsupportedScenarioError
from fednot.federation.costs import FlopMeter
from fednot.federation.outcome import Trained
from fednot.testing import centralized_experiment, tiny_config, tiny_federation
from fednot.types import StateDict
from fednot.unlearning.centralized.rand_label import RandL
from fednot.unlearning.centralized.salun import SalUn, forget_gradient, saliency_mask
from fednot.unlearning.registry import create_unlearner


@pytest.fixture(scope="module")
def trained() -> tuple[Experiment, Trained]:
    exp = centralized_experiment()
    return exp, exp.pretrain()


# -- the mask, by hand -------------------------------------------------------------------------


def test_mask_keeps_the_largest_magnitudes_globally() -> None:
    grads = {"a": torch.tensor([[0.1, -3.0], [0.5, 0.0]]), "b": torch.tensor([2.0, -0.2, 1.0])}
    # |g| ranked: a[0,1]=3, b[0]=2, b[2]=1, a[1,0]=0.5, b[1]=0.2, a[0,0]=0.1, a[1,1]=0
    mask = saliency_mask(grads, 0.5)  # round(3.5) = 4 entries
    assert mask["a"].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert mask["b"].tolist() == [1.0, 0.0, 1.0]
    mask = saliency_mask(grads, 0.3)  # round(2.1) = 2 entries
    assert mask["a"].tolist() == [[0.0, 1.0], [0.0, 0.0]] and mask["b"].tolist() == [1, 0, 0]
    assert all(m.all() for m in saliency_mask(grads, 1.0).values())
    assert not any(m.any() for m in saliency_mask(grads, 0.0).values())
    assert mask["a"].dtype == torch.float32 and mask["a"].shape == (2, 2)


def test_mask_breaks_ties_by_position() -> None:
    mask = saliency_mask({"a": torch.ones(3), "b": -torch.ones(3)}, 0.5)
    assert mask["a"].tolist() == [1.0, 1.0, 1.0] and mask["b"].tolist() == [0.0, 0.0, 0.0]
    mask = saliency_mask({"b": -torch.ones(3), "a": torch.ones(3)}, 0.5)
    assert mask["b"].tolist() == [1.0, 1.0, 1.0] and mask["a"].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.5, 0.77, 0.9])
def test_mask_count_is_round_ratio_times_total(ratio: float) -> None:
    g = torch.Generator().manual_seed(int(ratio * 100))
    grads = {"w": torch.randn(13, 7, generator=g), "b": torch.randn(5, generator=g)}
    mask = saliency_mask(grads, ratio)
    chosen = torch.cat([mask[k].flatten() for k in grads]).bool()
    values = torch.cat([grads[k].abs().flatten() for k in grads])
    assert int(chosen.sum()) == round(ratio * 96)
    assert values[chosen].min() >= values[~chosen].max()


def test_mask_rejects_a_ratio_outside_the_unit_interval() -> None:
    with pytest.raises(ConfigError, match="mask ratio"):
        saliency_mask({"w": torch.ones(2)}, 1.5)


def test_forget_gradient_by_hand_on_a_linear_model() -> None:
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()  # uniform softmax: d(-CE)/dz = onehot(y) - (0.5, 0.5)
    batches = [
        (torch.tensor([[1.0, 2.0]]), torch.tensor([0])),
        (torch.tensor([[2.0, 0.0]]), torch.tensor([1])),
    ]
    # (0.5, -0.5) ⊗ (1, 2) + (-0.5, 0.5) ⊗ (2, 0), summed over the two batches
    grads = forget_gradient(layer, batches)
    torch.testing.assert_close(grads["weight"], torch.tensor([[-0.5, 1.0], [0.5, -1.0]]))
    torch.testing.assert_close(grads["bias"], torch.tensor([0.0, 0.0]))
    assert layer.weight.grad is None


# -- the defining properties -------------------------------------------------------------------


def _mask_of(exp: Experiment, state: StateDict, batch_size: int, ratio: float) -> StateDict:
    """The saliency mask computed directly from the forget set, in eval mode."""
    model = copy.deepcopy(exp.model)
    model.load_state_dict(state)
    model.eval()
    forget = exp.split(exp.scenario.request).forget
    batches = [(exp.federation.preprocess(x), y) for x, y in forget.batches(batch_size)]
    return saliency_mask(forget_gradient(model, batches), ratio)


def test_only_masked_weights_are_updated(trained: tuple[Experiment, Trained]) -> None:
    exp, original = trained
    outcome = exp.unlearn(original, exp.scenario.request, SalUn(epochs=3, batch_size=8))
    mask = _mask_of(exp, original.state, 8, 0.5)
    total = sum(m.numel() for m in mask.values())
    assert outcome.notes["salient"] == round(0.5 * total) and outcome.notes["parameters"] == total
    changed_in, salient = 0, 0
    for name, m in mask.items():
        keep = m.bool()
        before, after = original.state[name], outcome.state[name]
        assert torch.equal(after[~keep], before[~keep]), name  # bit-identical
        changed_in += int((after[keep] != before[keep]).sum())
        salient += int(keep.sum())
    assert changed_in == salient  # momentum and weight decay move every salient entry


class _RandLStream(RandL):
    """RandL drawing from SalUn's stream (seed streams are keyed by the method's name)."""

    name = "salun"


def test_mask_ratio_one_reduces_to_randl(trained: tuple[Experiment, Trained]) -> None:
    exp, original = trained
    request = exp.scenario.request
    salun = exp.unlearn(original, request, SalUn(mask_ratio=1.0, epochs=2, batch_size=8))
    randl = exp.unlearn(original, request, _RandLStream(epochs=2, lr=0.013, batch_size=8))
    assert all(torch.equal(salun.state[k], randl.state[k]) for k in randl.state)
    half = exp.unlearn(original, request, SalUn(mask_ratio=0.5, epochs=2, batch_size=8))
    assert not torch.equal(half.state["fc1.weight"], randl.state["fc1.weight"])


# -- costs and the engine contract -------------------------------------------------------------


def test_counts_the_mask_pass_and_randl_steps_without_traffic(
    trained: tuple[Experiment, Trained],
) -> None:
    exp, original = trained
    outcome = exp.unlearn(original, exp.scenario.request, SalUn(epochs=2, batch_size=10))
    meter = FlopMeter(exp.model)
    step = {n: meter.train_step((n, 1, 8, 8)) for n in (10, 8, 2)}
    mask_pass = step[8]  # the 8 forget samples in one batch
    randl = 2 * (3 * step[10] + step[2])  # 2 epochs over the 32 samples of D_f ∪ D_r
    assert outcome.step_costs.flops == mask_pass + randl
    assert outcome.step_costs.comm_bytes == 0 and outcome.log.rounds == []


def test_end_to_end_through_the_registry(trained: tuple[Experiment, Trained]) -> None:
    exp, original = trained
    method = create_unlearner("salun", {"epochs": 2, "batch_size": 8, "mode": "alternating"})
    outcome = exp.unlearn(original, exp.scenario.request, method)
    metrics = exp.evaluate(outcome.state)
    assert 0.0 <= metrics.retain_acc <= 100.0 and 0.0 <= metrics.forget_acc <= 100.0
    assert outcome.log.stop_reason.startswith("no recovery")


def test_serves_only_the_centralized_scenario() -> None:
    exp = Experiment(
        tiny_config(unlearn=UnlearnConfig(recovery_rounds=0)), 0, federation=tiny_federation()
    )
    with pytest.raises(UnsupportedScenarioError, match="centralized"):
        exp.unlearn(exp.initial_state, exp.scenario.request, SalUn())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epochs": 0}, "`epochs` to be a positive int"),
        ({"batch_size": -8}, "`batch_size` to be a positive int"),
        ({"lr": -0.1}, "`lr` to be a positive float"),
        ({"mask_ratio": 0.0}, r"`mask_ratio` to be a float in \(0, 1\]"),
        ({"mask_ratio": 1.01}, "`mask_ratio`"),
        ({"momentum": -0.1}, "`momentum`"),
        ({"weight_decay": -1e-4}, "`weight_decay`"),
        ({"mode": "shuffled"}, "`mode` to be one of \\['merged', 'alternating'\\]"),
    ],
)
def test_rejects_bad_hyperparameters(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SalUn(**options)  # type: ignore[arg-type]


def test_defaults() -> None:
    method = SalUn()
    assert method.options() == {
        "epochs": 10,
        "lr": 0.013,
        "mask_ratio": 0.5,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 256,
        "mode": "merged",
    }
    assert method.requirements.forget_data
