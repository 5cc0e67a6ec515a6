from __future__ import annotations

import torch
from torch import nn

from fednot.federation.costs import FlopMeter, state_bytes
from fednot.federation.local import LocalRecipe, local_train
from fednot.models.registry import create_model
from fednot.testing import tiny_federation


def test_linear_forward_counts_two_flops_per_multiply_accumulate() -> None:
    meter = FlopMeter(nn.Linear(5, 3))
    assert meter.forward((4, 5)) == 2 * 4 * 5 * 3


def test_mlp_training_step_matches_the_hand_count() -> None:
    b, i, h, o = 8, 64, 16, 4
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=o, options={"hidden": (h,)})
    # forward 2B(ih + ho); backward: layer 2 input and weight grads 2·2Bho; layer 1 weight grad
    # only (the input needs no gradient) 2Bih.
    expected = 2 * b * (i * h + h * o) + 2 * 2 * b * h * o + 2 * b * i * h
    assert FlopMeter(model).train_step((b, 1, 8, 8)) == expected


def test_cached_count_times_batches_equals_counting_every_batch() -> None:
    federation = tiny_federation(num_clients=1, train_per_client=20)
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=4, options={"hidden": (16,)})
    meter = FlopMeter(model)
    update = local_train(
        model,
        model.state_dict(),
        federation.clients[0].train,
        federation.preprocess,
        LocalRecipe(batch_size=8),
        torch.Generator().manual_seed(0),
        flops=meter,
    )
    # 20 samples in batches of 8: two full batches and one of 4, each measured separately
    fresh = FlopMeter(model)
    assert update.flops == 2 * fresh.train_step((8, 1, 8, 8)) + fresh.train_step((4, 1, 8, 8))


def test_state_bytes_counts_buffers_too() -> None:
    bn = nn.BatchNorm1d(3)
    # weight, bias, running mean and var: 4 × 3 float32; num_batches_tracked: one int64
    assert state_bytes(bn.state_dict()) == 4 * 3 * 4 + 8
