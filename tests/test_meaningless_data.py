"""Data that cannot support a result is refused or flagged before the first round (issue 30)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.cli.app import main
from fednot.data.federated import ClientData, Federation
from fednot.data.source import ImageSet
from fednot.errors import ConfigError, ContractError, FedNotWarning
from fednot.testing import set_args, tiny_config, tiny_federation
from fednot.types import StateDict
from fednot.unlearning.base import Unlearner, UnlearnResult
from fednot.unlearning.context import UnlearnContext

torch.set_num_threads(1)


def _with_labels(fed: Federation, labels: torch.Tensor) -> Federation:
    """``fed``'s views over a copy of its pool that carries ``labels``."""
    source = fed.test.source
    moved = ImageSet(source.images, labels, source.classes)
    clients = tuple(ClientData(c.id, c.train.over(moved), c.val.over(moved)) for c in fed.clients)
    return Federation(clients, fed.test.over(moved), fed.preprocess, 4, fed.input_shape)


def test_a_single_training_class_is_refused() -> None:
    fed = tiny_federation(3, num_classes=4)
    labels = fed.test.source.labels.clone()
    for client in fed.clients:
        labels[client.train.indices] = 2
    with pytest.raises(ConfigError, match="has class 2: every model would score 100 %"):
        Experiment(tiny_config(), seed=0, federation=_with_labels(fed, labels))


def test_test_classes_no_client_trains_on_are_flagged() -> None:
    fed = tiny_federation(3, num_classes=4)
    labels = fed.test.source.labels.clone()
    rows = torch.cat([c.train.indices for c in fed.clients])
    labels[rows] = labels[rows] % 3  # the clients never train on class 3
    labels[fed.test.indices[:8]] = 3
    unseen = int((labels[fed.test.indices] == 3).sum())
    with pytest.warns(FedNotWarning, match=rf"holds {unseen} samples of classes no client trains"):
        Experiment(tiny_config(), seed=0, federation=_with_labels(fed, labels))


def test_a_failed_model_write_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def full_disk(*args: object, **kwargs: object) -> None:
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    out = tmp_path / "model.pt"
    argv = [
        "train",
        "-q",
        *set_args(
            "data.num_clients=3",
            "model.name=mlp",
            "model.options.hidden=[8]",
            "train.rounds=1",
            "cache_dir=",
        ),
        "--out",
        str(out),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "cannot read or write" in err and str(out) in err and "PytorchStreamWriter" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


class _WrongState(Unlearner):
    """A plugin method whose step returns what the contract rules out."""

    name = "wrong_state"

    def __init__(self, *, mode: str = "missing") -> None:
        self.mode = mode

    def unlearn(self, state: StateDict, ctx: UnlearnContext) -> UnlearnResult:
        out: dict[str, Any] = {k: v.clone() for k, v in state.items()}
        first = next(iter(out))
        if self.mode == "missing":
            del out[first]
        elif self.mode == "shape":
            out[first] = out[first].flatten()
        elif self.mode == "dtype":
            out[first] = out[first].double()
        else:
            out[first] = out[first].tolist()
        return UnlearnResult(out)


@pytest.mark.parametrize(
    ("mode", "said"),
    [("missing", "lacking"), ("shape", "of shape"), ("dtype", "torch.float64"), ("list", "a list")],
)
def test_a_step_returning_another_state_is_named_not_a_traceback(mode: str, said: str) -> None:
    exp = Experiment(tiny_config(), seed=0, federation=tiny_federation(3))
    trained = exp.pretrain()
    with pytest.raises(ContractError, match=rf"method 'wrong_state' returned .*{said}"):
        exp.unlearn(trained, exp.scenario.request, _WrongState(mode=mode))


class _Slice(torch.nn.Module):
    """Logits that are the first pixels: the right shape, nothing to train."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, : self.k]


@pytest.mark.parametrize("frozen", [False, True])
def test_a_model_without_trainable_parameters_is_refused(frozen: bool) -> None:
    from fednot.benchmark.preflight import check_model

    fed = tiny_federation(3, num_classes=4)
    model: torch.nn.Module = _Slice(4)
    if frozen:  # weights, all frozen
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(4))
        model(torch.zeros(1, *fed.input_shape))
        model.requires_grad_(False)
    with pytest.raises(ConfigError, match="has no trainable parameter"):
        check_model(model, fed, "mine")


def test_a_stray_huge_label_is_refused_not_allocated() -> None:
    from fednot.data.convert import MAX_CLASSES, image_set
    from fednot.errors import DataError

    images = torch.zeros((4, 1, 4, 4), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 0, 10**12])
    with pytest.raises(DataError, match="the largest label is 1000000000000"):
        image_set((images, labels))
    ok = image_set((images, torch.tensor([0, 1, 0, MAX_CLASSES - 1])))  # the ceiling itself loads
    assert len(ok.classes) == MAX_CLASSES


class _NaNHead(torch.nn.Module):
    """A linear head whose forward divides by zero on an all-zero input."""

    def __init__(self, features: int, k: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(features, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.fc(x / x.sum(dim=1, keepdim=True))


def test_a_model_that_outputs_nan_untrained_is_blamed_not_the_learning_rate() -> None:
    from fednot.benchmark.preflight import check_model

    fed = tiny_federation(3, num_classes=4)
    features = int(torch.tensor(fed.input_shape).prod())
    with pytest.raises(ConfigError, match="NaN or infinite logits .* no learning rate can help"):
        check_model(_NaNHead(features, 4), fed, "mine")
