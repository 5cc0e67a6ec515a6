"""PUF: the negated pseudo-gradient update, its variants and the round's costs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.config import ModelConfig
from fednot.data.federated import Samples
from fednot.errors import ConfigError, MissingRequirementError
from fednot.federation.costs import FlopMeter, state_bytes
from fednot.federation.fedavg import TrainLog
from fednot.federation.local import LocalRecipe, LocalUpdate, local_train
from fednot.federation.outcome import Trained, UnlearnOutcome
from fednot.testing import forbid_clients, tiny_config, tiny_federation
from fednot.types import ForgetRequest, StateDict
from fednot.unlearning.puf import PUF, clamp_running_variances, pseudo_gradient, puf_update
from fednot.unlearning.registry import create_unlearner

REQUEST = ForgetRequest(clients=(0,))


def _experiment(**sections: object) -> Experiment:
    federation = sections.pop("federation", None) or tiny_federation()
    return Experiment(tiny_config(**sections), seed=0, federation=federation)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained() -> Trained:
    return _experiment().pretrain()


def _step_only(
    exp: Experiment, trained: Trained, request: ForgetRequest, method: PUF
) -> UnlearnOutcome:
    """Run the method through the engine with recovery switched off: the method's own output."""
    exp._recover = lambda state, *_: (state, TrainLog())  # type: ignore[method-assign]
    return exp.unlearn(trained, request, method)


def _train(
    exp: Experiment, state: StateDict, data: Samples, key: tuple[object, ...], epochs: int = 1
) -> LocalUpdate:
    """Independent local training with the stream `UnlearnContext.train_local` would use."""
    recipe = replace(LocalRecipe.from_config(exp.config.train), epochs=epochs)
    generator = exp.streams.torch("unlearn", "puf", "local", *key)
    return local_train(
        exp.model,
        state,
        data,
        exp.federation.preprocess,
        recipe,
        generator,
        flops=FlopMeter(exp.model),
    )


# -- the pure update, hand-computed ----------------------------------------------------------


def test_puf_update_special_by_hand() -> None:
    theta = {"w": torch.tensor([1.0, 2.0]), "count": torch.tensor(7)}
    one = puf_update(theta, [{"w": torch.tensor([0.5, -1.0])}], [10.0], alpha=2.0)
    assert torch.equal(one["w"], torch.tensor([0.0, 4.0]))  # θ - 2·Δ_u
    assert one["count"] is theta["count"]
    two = puf_update(
        theta,
        [{"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([0.0, 1.0])}],
        [1.0, 3.0],
        alpha=2.0,
    )
    assert torch.equal(two["w"], torch.tensor([0.5, 0.5]))  # θ - 2·(Δ1/4 + 3·Δ2/4)


def test_puf_update_regular_by_hand() -> None:
    theta = {"w": torch.tensor([0.0])}
    out = puf_update(
        theta,
        [{"w": torch.tensor([1.0])}],
        [1.0],
        alpha=20.0,
        other_deltas=[{"w": torch.tensor([2.0])}, {"w": torch.tensor([4.0])}],
        other_weights=[1.0, 2.0],
    )
    # total 4: 2/4 + 2·4/4 - 20·(1/4)·1 = 0.5 + 2 - 5
    assert torch.equal(out["w"], torch.tensor([-2.5]))


def test_puf_update_rejects_mismatched_weights() -> None:
    theta = {"w": torch.zeros(1)}
    with pytest.raises(ConfigError, match="one weight per update"):
        puf_update(theta, [theta], [1.0, 2.0], alpha=1.0)
    with pytest.raises(ConfigError, match="at least one target update"):
        puf_update(theta, [], [], alpha=1.0)


def test_running_variances_are_clamped_and_nothing_else() -> None:
    state = {"bn.running_var": torch.tensor([-0.5, 2.0]), "fc.weight": torch.tensor([-1.0])}
    out = clamp_running_variances(state)
    assert torch.equal(out["bn.running_var"], torch.tensor([0.0, 2.0]))
    assert out["fc.weight"] is state["fc.weight"]


# -- the method ------------------------------------------------------------------------------


def test_options_defaults_and_validation() -> None:
    assert PUF().alpha == 20.0 and PUF(variant="special").alpha == 2.0  # official config values
    assert PUF(variant="special", alpha=0).alpha == 0.0
    with pytest.raises(ConfigError, match="Expected `variant`"):
        PUF(variant="both")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="Expected `alpha` to be a non-negative float"):
        PUF(alpha=-1.0)
    with pytest.raises(ConfigError, match="Expected `epochs` to be a positive int, got 0"):
        PUF(epochs=0)
    assert create_unlearner("puf", {"variant": "special"}).options()["alpha"] == 2.0
    assert not PUF.requirements.history and PUF.requirements.target_participation


def test_special_with_alpha_zero_is_the_identity(trained: Trained) -> None:
    outcome = _step_only(_experiment(), trained, REQUEST, PUF(variant="special", alpha=0.0))
    for key, value in trained.state.items():
        assert torch.equal(outcome.state[key], value), key


def test_puf_applies_exactly_minus_alpha_delta(trained: Trained) -> None:
    exp = _experiment()
    outcome = _step_only(exp, trained, REQUEST, PUF(variant="special", alpha=2.0, epochs=2))
    theta = trained.state
    target = _train(exp, theta, exp.split(REQUEST).forget, ("target",), epochs=2)
    for key, value in theta.items():
        delta = target.state[key].double() - value.double()
        assert not torch.equal(delta, torch.zeros_like(delta)), key  # the target did train
        # θ - α·Δ_u, evaluated in float64 and rounded once to the state's dtype
        assert torch.equal(outcome.state[key], (value.double() - 2.0 * delta).to(value.dtype))
        torch.testing.assert_close(
            (outcome.state[key] - value).double(), -2.0 * delta, rtol=0, atol=1e-6
        )


def test_regular_adds_the_others_and_subtracts_the_scaled_target(trained: Trained) -> None:
    exp = _experiment()
    outcome = _step_only(exp, trained, REQUEST, PUF())
    theta, split = trained.state, exp.split(REQUEST)
    target = _train(exp, theta, split.forget, ("target",))
    others = [_train(exp, theta, c.train, ("retained", c.id)) for c in split.retained.clients]
    expected = puf_update(
        theta,
        [pseudo_gradient(target.state, theta)],
        [32.0],
        alpha=20.0,
        other_deltas=[pseudo_gradient(o.state, theta) for o in others],
        other_weights=[32.0, 32.0],
    )
    for key, value in expected.items():
        assert torch.equal(outcome.state[key], value), key


def test_traffic_is_the_unlearning_round(trained: Trained) -> None:
    size = state_bytes(trained.state)
    special = _step_only(_experiment(), trained, REQUEST, PUF(variant="special"))
    assert special.step_costs.comm_bytes == 2 * size  # θ down, update up
    regular = _step_only(_experiment(), trained, REQUEST, PUF())
    assert regular.step_costs.comm_bytes == 2 * 3 * size  # the target and two others
    both = _step_only(_experiment(), trained, ForgetRequest(clients=(0, 1)), PUF(variant="special"))
    assert both.step_costs.comm_bytes == 2 * 2 * size
    # class-wise: client 0 also trains on its retained data, downloading θ once: 3 down, 4 up
    partial = ForgetRequest(clients=(0,), classes=(1,))
    assert _step_only(_experiment(), trained, partial, PUF()).step_costs.comm_bytes == 7 * size


def test_flops_are_the_target_epochs(trained: Trained) -> None:
    exp = _experiment()
    outcome = _step_only(exp, trained, REQUEST, PUF(variant="special", epochs=2))
    # 32 forget samples in batches of 8, for 2 epochs
    assert outcome.step_costs.flops == 2 * 4 * exp.flops.train_step((8, 1, 8, 8))


def test_end_to_end_with_recovery_and_determinism() -> None:
    def once() -> UnlearnOutcome:
        exp = _experiment()
        return exp.unlearn(exp.pretrain(), REQUEST, PUF())

    first, second = once(), once()
    assert first.log.rounds and all(r.clients == (1, 2) for r in first.log.rounds)
    for key, value in first.state.items():
        assert torch.equal(value, second.state[key]), key


def test_only_the_regular_variant_trains_the_remaining_clients(trained: Trained) -> None:
    exp = _experiment(federation=forbid_clients(tiny_federation(), (2,)))
    _step_only(exp, trained, REQUEST, PUF(variant="special"))  # never reads client 2's data
    with pytest.raises(MissingRequirementError, match="clients \\[2\\]"):
        _step_only(exp, trained, REQUEST, PUF())


def test_keys_shapes_dtypes_and_batchnorm_buffers() -> None:
    model = ModelConfig(name="resnet18", options={"width": 4})
    exp = _experiment(model=model, federation=tiny_federation(shape=(3, 8, 8)))
    trained = exp.pretrain()
    outcome = _step_only(exp, trained, REQUEST, PUF())
    assert set(outcome.state) == set(trained.state)
    for key, value in trained.state.items():
        out = outcome.state[key]
        assert out.shape == value.shape and out.dtype == value.dtype, key
        if not value.is_floating_point():
            assert torch.equal(out, value), key  # integer buffers are θ's
        if key.endswith("running_var"):
            assert bool((out >= 0).all()), key
