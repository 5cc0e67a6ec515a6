"""Checks that run before the first round: everything that can fail later is tried now.

A configuration that leaves a client without training data, the retained clients without a
validation sample, the forget set too small for the membership-inference attack, or a model that
cannot process the data would otherwise fail after pre-training, minutes or hours into a run.
`Experiment` checks the federation and the model when it is built, and a forget request with
`Experiment.check_request`, which the command line calls before any output is written.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping

import torch
from torch import nn

from fednot.config import RunConfig, TrainConfig
from fednot.data.federated import Federation
from fednot.data.forget import ForgetSplit
from fednot.errors import ConfigError, FedNotWarning
from fednot.federation.fedavg import TrainLog


def check_federation(federation: Federation, config: RunConfig) -> None:
    """Every client trains on something, and the server has a test set."""
    empty = [c.id for c in federation.clients if len(c.train) == 0]
    if empty:
        raise ConfigError(
            f"{len(empty)} of {len(federation.clients)} clients hold no training sample (first: "
            f"{empty[:5]}); data.num_clients = {config.data.num_clients} is too many for this "
            "data set: use fewer clients (or, with a Dirichlet partition, a larger "
            "data.min_client_samples)."
        )
    if len(federation.test) == 0:
        raise ConfigError("The test set is empty: use a larger data.test_fraction.")
    # the engine's own look at the labels: views a method may not read are not read through
    trained = torch.cat([c.train.source.labels[c.train.indices] for c in federation.clients])
    classes = set(trained.tolist())
    if len(classes) < 2:
        raise ConfigError(
            f"Every training sample of every client has class {sorted(classes)[0]}: every model "
            "would score 100 % and every gap 0, so no comparison would mean anything. Use data "
            "with at least two classes among the clients' training samples."
        )
    test = federation.test.source.labels[federation.test.indices]
    unseen = sorted(set(test.tolist()) - classes)
    if unseen:
        count = int(torch.isin(test, torch.tensor(unseen)).sum())
        warnings.warn(
            f"The test set holds {count} samples of classes no client trains on ({unseen[:10]}): "
            "every model misclassifies them, so test accuracy cannot exceed "
            f"{100 * (1 - count / len(test)):.1f} %. Check the data's labels, or hold out the "
            "test set from the same classes.",
            FedNotWarning,
            stacklevel=2,
        )


def check_request(federation: Federation, split: ForgetSplit, config: RunConfig) -> None:
    """The retained clients can validate, and the forget set can feed the MIA's folds."""
    if len(split.retained.pooled_val()) == 0:
        raise ConfigError(
            "The retained clients hold no validation sample, so no round can be validated: use "
            "fewer clients (data.num_clients) or a larger data.val_fraction."
        )
    folds = config.eval.mia_folds
    members = split.forget.labels.tolist()
    if config.eval.mia_nonmembers == "label_matched":
        test = Counter(federation.test.labels.tolist())
        usable = sum(min(n, test[c]) for c, n in Counter(members).items())
        kind = "label-matched "
    else:
        usable, kind = min(len(members), len(federation.test)), ""
    if usable < folds:
        raise ConfigError(
            f"The forget set holds {len(members)} samples, {usable} of them usable as "
            f"{kind}MIA members; the attack's {folds} folds need at least {folds}. Forget more "
            "data (fewer clients, another forget request), or lower eval.mia_folds."
        )


def check_model(model: nn.Module, federation: Federation, name: str) -> None:
    """The model trains something, has no empty layer, and maps inputs to one logit per class."""
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(
            f"Model {name!r} has no trainable parameter, so FedAvg has nothing to train and no "
            "method anything to unlearn: give it at least one layer with weights (and do not "
            "freeze them all with requires_grad=False)."
        )
    empty = [n for n, p in model.named_parameters() if p.numel() == 0]
    if empty:
        raise ConfigError(
            f"Model {name!r} has empty layers {empty[:3]} (a width of 0 in model.options?); "
            "every width must be >= 1."
        )
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    batch = torch.zeros((2, *federation.input_shape), device=device)
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(batch)
    except (RuntimeError, ValueError, AssertionError) as e:
        raise ConfigError(
            f"Model {name!r} cannot process inputs of shape {federation.input_shape} ({e}); "
            "check model.options and data.image_size."
        ) from e
    finally:
        model.train(training)
    if tuple(out.shape) != (2, federation.num_classes):
        raise ConfigError(
            f"Model {name!r} returns outputs of shape {tuple(out.shape)[1:]} per input; "
            f"expected ({federation.num_classes},), one logit per class."
        )
    if not torch.isfinite(out).all():  # else the first round's divergence blames the rate
        raise ConfigError(
            f"Model {name!r} returns NaN or infinite logits for an all-zero batch before any "
            "training, so no learning rate can help: check its forward pass (a division by "
            "zero, a log or sqrt of a non-positive value) and its initialisation."
        )


def check_state(model: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """``state`` has exactly ``model``'s tensors with their shapes (e.g. a checkpoint's)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    resized = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = [
        f"{label}: {', '.join(items[:4])}{' …' if len(items) > 4 else ''}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("resized", resized))
        if items
    ]
    if problems:
        raise ConfigError(
            f"The model state in {where} does not fit the model its configuration builds "
            f"({'; '.join(problems)}). Was the file edited, or its configuration changed?"
        )


def warn_if_trivial(log: TrainLog, val_labels: torch.Tensor, train: TrainConfig) -> None:
    """Warn when pre-training (5 rounds or more) ends no better than the most frequent class.

    Such a model has finite weights (no divergence) but learned nothing, so every method on it
    scores the same; the likely causes are a learning rate or weight decay too large, or too few
    rounds.
    """
    if len(log.rounds) < 5 or len(val_labels) == 0:  # a few rounds may not have learned yet
        return
    majority = float(torch.bincount(val_labels).max()) / len(val_labels) * 100
    final = log.rounds[-1].val_acc
    if final <= majority + 2.0:
        warnings.warn(
            f"Pre-training ended at {final:.2f}% validation accuracy, no better than always "
            f"answering the most frequent class ({majority:.2f}%): the model learned nothing, "
            "and every unlearning method will score alike on it. Check train.lr (now "
            f"{train.lr:g}), train.weight_decay (now {train.weight_decay:g}) and train.rounds "
            f"(now {train.rounds}).",
            FedNotWarning,
            stacklevel=3,
        )
