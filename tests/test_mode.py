"""MoDE: momentum degradation and memory guidance (Zhao et al., IEEE IoT-J 2023)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from fednot.benchmark.experiment import Experiment
from fednot.data.federated import Samples
from fednot.data.source import ImageSet
from fednot.errors import ConfigError
from fednot.federation.costs import FlopMeter, state_bytes
from fednot.federation.local import LocalRecipe, local_train
from fednot.federation.outcome import Trained
from fednot.models.registry import create_model
from fednot.seeding import SeedStreams
from fednot.testing import tiny_config, tiny_federation
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.context import UnlearnContext
from fednot.unlearning.mode import MoDE, momentum_update
from fednot.unlearning.model_parts import ModelParts
from fednot.unlearning.registry import create_unlearner

CLIENT = ForgetRequest(clients=(0,))
CLASS = ForgetRequest(clients=(0,), classes=(1,))


def _context(
    request: ForgetRequest = CLIENT, model: str = "mlp", options: dict[str, object] | None = None
) -> tuple[UnlearnContext, StateDict]:
    """A context over a 3-client tiny federation, and a (random) global state."""
    federation = tiny_federation()
    split = Experiment(tiny_config(), 0, federation=federation).split(request)
    options = options if options is not None else {"hidden": (16,)}
    make = {"input_shape": federation.input_shape, "num_classes": 4, "options": options}
    net = create_model(model, **make)  # type: ignore[arg-type]
    state = create_model(model, generator=torch.Generator().manual_seed(1), **make).state_dict()  # type: ignore[arg-type]
    parts = ModelParts(net, state, name=model, options=options)
    ctx = UnlearnContext.create(
        MoDE(), split, parts, SeedStreams(0), recipe=LocalRecipe(batch_size=8)
    )
    return ctx, state


@pytest.fixture(scope="module")
def trained() -> tuple[Experiment, Trained]:
    exp = Experiment(tiny_config(), 0, federation=tiny_federation())
    return exp, exp.pretrain()


# -- pure functions ---------------------------------------------------------------------------


def test_momentum_update_by_hand() -> None:
    theta = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    theta_de = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(7)}
    half = momentum_update(theta, theta_de, 0.5)
    assert torch.equal(half["w"], torch.tensor([2.0, 4.0]))
    assert torch.equal(momentum_update(theta, theta_de, 0.75)["w"], torch.tensor([1.5, 3.0]))
    assert torch.equal(momentum_update(theta, theta_de, 1.0)["w"], theta["w"])  # λ=1 keeps θ
    assert torch.equal(momentum_update(theta, theta_de, 0.0)["w"], theta_de["w"])  # λ=0: θ_de
    for lam in (0.0, 0.5, 1.0):
        out = momentum_update(theta, theta_de, lam)
        assert out["n"].item() == 3 and out["n"].dtype == torch.int64  # integer buffers: θ's


class _GarbageLabels(Samples):
    """The same images, with every label replaced by a wrong one."""

    def fetch(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        images, labels = super().fetch(positions)
        return images, (labels + 1) % 4


def _relabelled(data: Samples, teacher: nn.Module, ctx: UnlearnContext) -> Samples:
    images = data.source.images[data.indices]
    with torch.no_grad():
        labels = teacher.eval()(ctx.preprocess(images)).argmax(dim=1)  # hard pseudo-labels
    return Samples(ImageSet(images, labels, data.source.classes), torch.arange(len(data)))


def test_target_guidance_trains_on_the_teachers_labels_not_the_true_ones() -> None:
    ctx, state = _context()
    teacher = create_model("mlp", input_shape=(1, 8, 8), num_classes=4, options={"hidden": (16,)})
    teacher.load_state_dict(ctx.fresh_state("teacher"))
    recipe = LocalRecipe(batch_size=8, lr=0.1, momentum=0.0)
    data = ctx.forget_data
    garbage = _GarbageLabels(data.source, data.indices)
    meter = FlopMeter(ctx.model)

    def run(samples: Samples) -> tuple[StateDict, int]:
        update = local_train(
            ctx.model,
            state,
            samples,
            ctx.preprocess,
            recipe,
            torch.Generator().manual_seed(5),
            flops=meter,
            teacher=teacher,
        )
        return update.state, update.flops

    (with_true, flops), (with_garbage, _) = run(data), run(garbage)
    oracle = local_train(
        ctx.model,
        state,
        _relabelled(data, teacher, ctx),
        ctx.preprocess,
        recipe,
        torch.Generator().manual_seed(5),
        flops=meter,
    )
    plain = local_train(
        ctx.model,
        state,
        data,
        ctx.preprocess,
        recipe,
        torch.Generator().manual_seed(5),
        flops=meter,
    )
    for key in state:
        assert torch.equal(with_true[key], with_garbage[key]), key
        assert torch.equal(with_true[key], oracle.state[key]), key
    assert any(not torch.equal(with_true[k], plain.state[k]) for k in state)  # labels matter
    batches = len(data) // 8
    assert flops == batches * (meter.forward((8, 1, 8, 8)) + meter.train_step((8, 1, 8, 8)))


# -- the method -------------------------------------------------------------------------------


def test_options_are_validated_and_registered() -> None:
    with pytest.raises(ConfigError, match="Expected `rounds` to be a non-negative int, got -1"):
        MoDE(rounds=-1)
    with pytest.raises(ConfigError, match="`momentum` to be a float in \\[0, 1\\]"):
        MoDE(momentum=1.5)
    with pytest.raises(ConfigError, match="`lr_target_guidance` to be a positive float"):
        MoDE(lr_target_guidance=0.0)
    method = create_unlearner("mode", {"rounds": 3})
    assert isinstance(method, MoDE) and method.rounds == 3 and method.title == "MoDE"
    assert method.requirements.forget_data and method.requirements.target_participation


def test_zero_rounds_is_the_identity() -> None:
    ctx, state = _context()
    result = MoDE(rounds=0).unlearn(state, ctx)
    assert all(torch.equal(result.state[k], state[k]) for k in state)
    assert ctx.costs.comm_bytes == 0 and ctx.costs.flops == 0


@pytest.mark.parametrize(
    ("request_", "retained", "participants"),
    [(CLIENT, 2, 3), (CLASS, 3, 3)],
    ids=["client", "class"],
)
def test_traffic_follows_the_table(
    request_: ForgetRequest, retained: int, participants: int
) -> None:
    ctx, state = _context(request_)
    MoDE(rounds=3, degradation_rounds=2).unlearn(state, ctx)
    size = state_bytes(state)
    degradation = 2 * (2 * retained * size)  # θ_de down and up, remaining clients, 2 rounds
    guidance = 3 * (2 * participants * size + size)  # θ down and up for all, θ_de to the target
    assert ctx.costs.comm_bytes == degradation + guidance


def test_more_degradation_moves_further_from_the_original() -> None:
    def distance(r_de: int, momentum: float) -> float:
        ctx, state = _context()
        out = MoDE(rounds=2, degradation_rounds=r_de, momentum=momentum).unlearn(state, ctx).state
        return float(sum((out[k] - state[k]).norm() ** 2 for k in state))

    assert distance(2, 0.5) > distance(0, 0.5)


def test_end_to_end_through_the_experiment(trained: tuple[Experiment, Trained]) -> None:
    exp, original = trained
    outcome = exp.unlearn(original, CLIENT, MoDE(rounds=2, degradation_rounds=1))
    size = state_bytes(original.state)
    assert outcome.step_costs.comm_bytes == 1 * 2 * 2 * size + 2 * (2 * 3 * size + size)
    assert outcome.step_costs.flops > 0
    assert outcome.notes["degradation_rounds_run"] == 1
    assert outcome.log.rounds and all(r.clients == (1, 2) for r in outcome.log.rounds)
    again = exp.unlearn(original, CLIENT, MoDE(rounds=2, degradation_rounds=1))
    assert all(torch.equal(outcome.state[k], again.state[k]) for k in outcome.state)
