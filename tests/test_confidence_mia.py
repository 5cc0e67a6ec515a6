from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from fednot.benchmark.evaluation import Metrics
from fednot.benchmark.results import Record
from fednot.data.federated import Samples
from fednot.data.source import ImageSet
from fednot.errors import ConfigError
from fednot.federation.local import predict, predict_with_margins
from fednot.metrics.confidence import (
    ConfidenceAttack,
    calibrate,
    confidence_attack,
    roc_auc,
    tpr_at_fpr,
    true_class_margin,
)
from fednot.metrics.mia import loss_mia, mia_noise_floor

torch.set_num_threads(1)


def test_margin_is_the_logit_scaled_true_class_confidence() -> None:
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(50, 10)) * 5, rng.integers(0, 10, 50)
    p = torch.softmax(torch.tensor(logits), dim=1).numpy()[np.arange(50), labels]
    np.testing.assert_allclose(true_class_margin(logits, labels), np.log(p / (1 - p)), rtol=1e-9)


def test_margin_keeps_confident_samples_that_the_float32_loss_rounds_to_zero() -> None:
    logits = torch.tensor([[40.0, 0.0, 0.0], [60.0, 0.0, 0.0], [0.0, 0.0, 30.0]])
    labels = torch.tensor([0, 0, 1])
    losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert losses[0] == losses[1] == 0.0  # float32: both indistinguishable by the loss
    np.testing.assert_allclose(
        true_class_margin(logits.numpy(), labels.numpy()),
        [40 - np.log(2), 60 - np.log(2), -np.logaddexp(0.0, 30.0)],
        rtol=1e-12,
    )


def test_auc_and_tpr_equal_a_hand_computation() -> None:
    # One class; non-members' phi 0, 1, 2, 3 (mu 1.5): the scores keep phi's order. Each
    # member beats: phi 1 -> one non-member and ties one (1.5), 2.5 -> three, 4 -> all four,
    # so AUC = 8.5 / 12. At most 1 % of 4 non-members may exceed the threshold: none, so it is
    # their largest score, and one member of three lies above it.
    members, nonmembers = np.array([2.5, 1.0, 4.0]), np.array([3.0, 0.0, 2.0, 1.0])
    result = confidence_attack(
        members,
        nonmembers,
        member_labels=np.zeros(3),
        nonmember_labels=np.zeros(4),
        seed=0,
        permutations=0,
    )
    assert result == ConfidenceAttack(
        pytest.approx(100 * 8.5 / 12), pytest.approx(100 / 3), None, None, 3, 4
    )
    # FPR 25 %: one of four non-members may exceed the threshold, the second largest (2).
    assert tpr_at_fpr(members, nonmembers, fpr=0.25) == pytest.approx(200 / 3)


def test_auc_matches_scikit_learn_with_ties_and_batches() -> None:
    rng = np.random.default_rng(1)
    members, nonmembers = rng.integers(0, 5, (3, 30)) * 1.0, rng.integers(0, 6, (3, 40)) * 1.0
    truth = np.r_[np.ones(30), np.zeros(40)]
    pairs = zip(members, nonmembers, strict=True)
    expected = [100 * roc_auc_score(truth, np.r_[m, n]) for m, n in pairs]
    np.testing.assert_allclose(roc_auc(members, nonmembers), expected, rtol=1e-12)


def test_calibration_is_per_class_with_pooled_fallbacks() -> None:
    # Class 0: non-members 0, 2 (mu 1, sigma √2); class 1: 10, 14 (mu 12, sigma 2√2); class 2:
    # one non-member and class 3 constant non-members: both fall back to the pooled
    # non-members; class 4 has no non-member at all.
    n_labels = np.array([0, 0, 1, 1, 2, 3, 3])
    nonmembers = np.array([0.0, 2.0, 10.0, 14.0, 5.0, 7.0, 7.0])
    mu, sigma = nonmembers.mean(), nonmembers.std(ddof=1)
    m_labels = np.array([0, 1, 2, 3, 4])
    members = np.array([2.0, 13.0, 6.0, 8.0, 9.0])
    m_score, n_score = calibrate(members, nonmembers, m_labels, n_labels)
    expected = [1 / np.sqrt(2), 1 / np.sqrt(8), *((members[2:] - mu) / sigma)]
    np.testing.assert_allclose(m_score, expected, rtol=1e-12)
    np.testing.assert_allclose(n_score[:4], [-1 / np.sqrt(2), 1 / np.sqrt(2)] * 2, rtol=1e-12)


def _no_signal_world(
    rng: np.random.Generator, members: int = 280, nonmembers: int = 1000, shift: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-like margins of 10 classes: most confident (phi ~ 6-9), a few misclassified.

    ``shift`` raises the members' confident bulk (no signal at 0).
    """
    labels = rng.integers(0, 10, members + nonmembers)
    hard = rng.random(len(labels)) < 0.05
    phi = np.where(hard, rng.normal(-1, 2, len(labels)), rng.normal(6 + 0.3 * labels, 1.5))
    phi[:members] += shift * ~hard[:members]
    return phi[:members], phi[members:], labels[:members], labels[members:]


def test_no_signal_scores_chance_and_the_floors_cover_it() -> None:
    rng = np.random.default_rng(0)
    aucs, auc_inside, tpr_inside = [], [], []
    for world in range(200):
        members, nonmembers, m_labels, n_labels = _no_signal_world(rng)
        result = confidence_attack(
            members,
            nonmembers,
            member_labels=m_labels,
            nonmember_labels=n_labels,
            seed=world,
            permutations=100,
        )
        assert result.auc_floor is not None and result.tpr_floor is not None
        aucs.append(result.auc)
        auc_inside.append(abs(result.auc - 50) <= result.auc_floor)
        tpr_inside.append(result.tpr_at_1fpr <= result.tpr_floor)
    assert np.mean(aucs) == pytest.approx(50, abs=0.5)
    assert 0.88 <= np.mean(auc_inside) <= 0.995
    assert 0.88 <= np.mean(tpr_inside) <= 0.995


def test_detects_a_confidence_shift_that_the_loss_attack_misses() -> None:
    # Members' confident bulk is 1 logit-unit more confident. Their float32 losses (about
    # e^-phi, mostly below 1e-3) barely move, and the loss attack's one-feature fit cannot use
    # such small differences; the calibrated margins separate them.
    members, nonmembers, m_labels, n_labels = _no_signal_world(np.random.default_rng(5), shift=1.0)
    labels = {"member_labels": m_labels, "nonmember_labels": n_labels}
    result = confidence_attack(members, nonmembers, **labels, seed=0, permutations=100)
    assert result.auc_floor is not None
    assert result.auc - 50 > 3 * result.auc_floor
    m_loss, n_loss = (np.logaddexp(0, -phi).astype(np.float32) for phi in (members, nonmembers))
    mia = loss_mia(m_loss, n_loss, **labels, seed=0, repeats=10).mean
    floor = mia_noise_floor(m_loss, n_loss, **labels, seed=0, repeats=10, permutations=50)
    assert abs(mia - 50) < floor.half_width


def test_invariant_to_input_order() -> None:
    members, nonmembers, m_labels, n_labels = _no_signal_world(np.random.default_rng(3), 60, 200)
    m_order, n_order = np.random.default_rng(4).permutation(60), np.arange(200)[::-1]
    a = confidence_attack(
        members,
        nonmembers,
        member_labels=m_labels,
        nonmember_labels=n_labels,
        seed=1,
        permutations=20,
    )
    b = confidence_attack(
        members[m_order],
        nonmembers[n_order],
        member_labels=m_labels[m_order],
        nonmember_labels=n_labels[n_order],
        seed=1,
        permutations=20,
    )
    assert a == b


def test_infinite_margins_are_clamped_and_nan_is_an_error() -> None:
    labels = {"member_labels": np.zeros(3), "nonmember_labels": np.zeros(4)}
    inf = confidence_attack([np.inf, 1.0, 2.0], [0.0, 1.0, 3.0, 2.0], **labels, seed=0)
    assert inf.auc == pytest.approx(100 * 7.5 / 12)  # +inf counts as the largest finite, 3
    assert inf.tpr_at_1fpr == 0.0  # ... which does not exceed the non-members' largest
    with pytest.raises(ConfigError, match="member_margins must not be NaN, got 1 NaN"):
        confidence_attack([np.nan, 1.0, 2.0], [0.0, 1.0, 3.0, 2.0], **labels, seed=0)


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="one label per margin, got 2 for 3"):
        confidence_attack(
            [1.0, 2, 3], [1.0, 2], member_labels=[0, 0], nonmember_labels=[0, 0], seed=0
        )
    with pytest.raises(ConfigError, match="at least 1 member and 2 non-members, got 1 and 1"):
        confidence_attack([1.0], [2.0], member_labels=[0], nonmember_labels=[0], seed=0)
    with pytest.raises(ConfigError, match="permutations must be >= 0"):
        confidence_attack(
            [1.0], [2.0, 3], member_labels=[0], nonmember_labels=[0, 0], seed=0, permutations=-1
        )
    with pytest.raises(ConfigError, match="logits of shape"):
        true_class_margin(np.zeros((3, 1)), [0, 0, 0])


def test_predict_with_margins_adds_margins_to_predict() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (37, 1, 4, 4), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 3, (37,), generator=generator)
    data = Samples(ImageSet(images, labels, ("a", "b", "c")), torch.arange(37))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        model[1].weight.mul_(20)  # confident predictions

    def preprocess(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return x.float() / 255

    losses, correct, margins = predict_with_margins(model, data, preprocess, batch_size=8)
    expected_losses, expected_correct = predict(model, data, preprocess, batch_size=8)
    torch.testing.assert_close(losses, expected_losses, rtol=0, atol=0)
    assert torch.equal(correct, expected_correct) and margins.dtype == torch.float64
    with torch.no_grad():
        logits = model(preprocess(images)).numpy()
    expected = true_class_margin(logits, labels.numpy())  # float32 logits batched differently
    np.testing.assert_allclose(margins.numpy(), expected, rtol=1e-5)
    empty = predict_with_margins(model, data.select(torch.zeros(37, dtype=torch.bool)), preprocess)
    assert [len(t) for t in empty] == [0, 0, 0]


def test_records_carry_the_confidence_fields_and_old_records_still_load() -> None:
    names = ("retain_acc", "forget_acc", "test_acc", "mia", "mia_std", "val_acc", "mia_floor")
    values = dict(zip(names, (90.0, 80.0, 85.0, 51.0, 1.0, 88.0, 0.5), strict=True))
    confidence = {"conf_auc": 55.0, "conf_tpr": 2.0, "conf_auc_floor": 3.0, "conf_tpr_floor": 2.5}
    metrics = Metrics({**values, **confidence})
    others = {
        "method": "ft",
        "title": "FT",
        "seed": 0,
        "scenario": "client",
        "avg_gap": None,
        "comm_bytes": 1,
        "flops": 2,
        "step_comm_bytes": 0,
        "step_flops": 0,
        "rounds": 3,
        "stop_reason": "budget",
        "rounds_to_target": None,
        "comm_to_target": None,
        "seconds": 1.0,
        "requirements": "",
    }
    record = Record(
        **others, metrics=dict(metrics.values)
    )  # as fednot.benchmark.cells.make_record does
    assert (record.get("conf_auc"), record.get("conf_tpr")) == (55.0, 2.0)
    assert (record.get("conf_auc_floor"), record.get("conf_tpr_floor")) == (3.0, 2.5)
    assert record.to_dict()["asr"] is None  # every registered metric has its key
    old = {k: v for k, v in record.to_dict().items() if not k.startswith("conf_")}
    loaded = Record.from_dict(old)
    assert loaded.get("conf_auc") is None and loaded.get("conf_tpr_floor") is None
    assert loaded.get("mia_floor") == 0.5
