from __future__ import annotations

import pytest
import torch
from torch import nn

from fednot.errors import ConfigError
from fednot.federation.aggregate import weighted_average
from fednot.federation.costs import FlopMeter, state_bytes
from fednot.federation.fedavg import FedAvg, StopRule, TrainLog, client_generator
from fednot.federation.local import LocalRecipe
from fednot.models.registry import create_model
from fednot.seeding import SeedStreams
from fednot.testing import tiny_federation


def _model() -> nn.Module:
    return create_model(
        "mlp",
        input_shape=(1, 8, 8),
        num_classes=4,
        options={"hidden": (16,)},
        generator=torch.Generator().manual_seed(1),
    )


def test_weighted_average_by_hand() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, 8.0]), "n": torch.tensor(5)}
    avg = weighted_average([a, b], [1, 2])
    assert torch.allclose(avg["w"], torch.tensor([3.0, 6.0]))
    assert avg["n"].item() == 5 and avg["n"].dtype == torch.int64  # counters take the max


def test_weighted_average_rejects_bad_weights() -> None:
    with pytest.raises(ConfigError):
        weighted_average([{"w": torch.ones(1)}], [0])
    with pytest.raises(ConfigError):
        weighted_average([{"w": torch.ones(1)}], [1, 2])


def test_fedavg_with_one_client_equals_centralised_sgd() -> None:
    federation = tiny_federation(num_clients=1, train_per_client=40)
    recipe = LocalRecipe(epochs=2, batch_size=8, lr=0.1, momentum=0.9, weight_decay=1e-3)
    streams = SeedStreams(7)
    model = _model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    fedavg = FedAvg(model, federation, recipe, streams, phase="p")
    state, log = fedavg.run(start, StopRule(rounds=3))

    # Reference: plain PyTorch SGD over the same data, a fresh optimiser each round.
    reference = _model()
    reference.load_state_dict(start)
    data, prep = federation.clients[0].train, federation.preprocess
    for round_ in (1, 2, 3):
        generator = client_generator(streams, "p", round_, 0)
        optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        for _ in range(2):
            order = torch.randperm(len(data), generator=generator)
            for begin in range(0, len(data), 8):
                images, labels = data.fetch(order[begin : begin + 8])
                loss = nn.functional.cross_entropy(reference(prep(images, generator)), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    for key, value in reference.state_dict().items():
        assert torch.allclose(state[key], value, atol=1e-6), key
    assert len(log.rounds) == 3


def test_aggregation_weights_by_sample_count() -> None:
    from fednot.data.federated import ClientData

    federation = tiny_federation(num_clients=2, train_per_client=48)
    first = federation.clients[0]
    # client 0 keeps 16 samples, client 1 has three times as many
    small = ClientData(0, first.train.select(torch.arange(48) < 16), first.val)
    mixed = federation.replace((small, federation.clients[1]))
    recipe = LocalRecipe(batch_size=8, lr=0.1)
    fedavg = FedAvg(_model(), mixed, recipe, SeedStreams(0), phase="p")
    start = _model().state_dict()
    state, _ = fedavg.round(start, 1)
    from fednot.federation.local import local_train

    updates = [
        local_train(
            _model(),
            start,
            c.train,
            mixed.preprocess,
            recipe,
            client_generator(SeedStreams(0), "p", 1, c.id),
            flops=FlopMeter(_model()),
        )
        for c in mixed.clients
    ]
    expected = {k: (updates[0].state[k] * 16 + updates[1].state[k] * 48) / 64 for k in start}
    for key in start:
        assert torch.allclose(state[key], expected[key], atol=1e-6)


def test_costs_count_both_directions_for_every_participant() -> None:
    federation = tiny_federation(num_clients=3)
    fedavg = FedAvg(_model(), federation, LocalRecipe(batch_size=8), SeedStreams(0), phase="p")
    start = _model().state_dict()
    _, log = fedavg.run(start, StopRule(rounds=2))
    assert log.costs.comm_bytes == 2 * 3 * 2 * state_bytes(start)
    assert log.costs.flops == sum(r.flops for r in log.rounds) > 0


def test_partial_participation_is_seeded() -> None:
    federation = tiny_federation(num_clients=5, train_per_client=8)
    make = lambda: FedAvg(  # noqa: E731
        _model(),
        federation,
        LocalRecipe(batch_size=8),
        SeedStreams(3),
        phase="p",
        participation=0.4,
    )
    a, b = make(), make()
    picks = [a.participants(r) for r in range(1, 6)]
    assert picks == [b.participants(r) for r in range(1, 6)]
    assert all(len(p) == 2 for p in picks) and len(set(picks)) > 1


def test_resume_continues_exactly() -> None:
    federation = tiny_federation(num_clients=2)
    start = _model().state_dict()

    def make() -> FedAvg:
        return FedAvg(_model(), federation, LocalRecipe(batch_size=8), SeedStreams(0), phase="p")

    straight, _ = make().run(start, StopRule(rounds=4))
    half, log = make().run(start, StopRule(rounds=2))
    resumed_log = TrainLog.from_dict(log.to_dict())
    resumed, full_log = make().run(half, StopRule(rounds=4), log=resumed_log)
    assert [r.round for r in full_log.rounds] == [1, 2, 3, 4]
    for key in straight:
        assert torch.equal(straight[key], resumed[key])


@pytest.mark.parametrize(
    ("rule", "accs", "stops"),
    [
        (StopRule(rounds=3), [1, 2], False),
        (StopRule(rounds=3), [1, 2, 3], True),
        (StopRule(rounds=0), [], True),
        (StopRule(rounds=9, target_val_acc=50), [10, 49.9], False),
        (StopRule(rounds=9, target_val_acc=50), [10, 50], True),
        (StopRule(rounds=9, patience=2), [5, 7, 6, 7], True),
        (StopRule(rounds=9, patience=2), [5, 7, 6, 8], False),
    ],
)
def test_stop_rules(rule: StopRule, accs: list[float], stops: bool) -> None:
    assert (rule.reason(accs) is not None) is stops


def test_frozen_parameters_do_not_move() -> None:
    from fednot.federation.local import local_train

    federation = tiny_federation(num_clients=1)
    model = _model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = LocalRecipe(batch_size=8, lr=0.5, weight_decay=0.1, frozen=frozenset({"fc1.weight"}))
    update = local_train(
        model,
        start,
        federation.clients[0].train,
        federation.preprocess,
        recipe,
        torch.Generator().manual_seed(0),
        flops=FlopMeter(model),
    )
    assert torch.equal(update.state["fc1.weight"], start["fc1.weight"])
    assert not torch.equal(update.state["fc1.bias"], start["fc1.bias"])
