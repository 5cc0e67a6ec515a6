"""Cache entries and checkpoints are verified when read: damage is reported, never used."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch

from fednot.benchmark.experiment import Experiment
from fednot.checkpoint import load_checkpoint, save_checkpoint
from fednot.cli.app import main
from fednot.config import TrainConfig
from fednot.errors import ConfigError, FedNotWarning
from fednot.store.cache import ModelCache, save_verified
from fednot.store.integrity import DIGEST_KEY, content_digest
from fednot.testing import interrupted_at_round, tiny_config, tiny_federation
from fednot.types import StateDict

FLIP = 400  # bytes flipped: the size of the damage in the report that motivated this check


def _experiment(cache_dir: Path, rounds: int = 2) -> Experiment:
    train = TrainConfig(rounds=rounds, batch_size=8, lr=0.05)
    config = tiny_config(cache_dir=str(cache_dir), train=train)
    return Experiment(config, seed=0, federation=tiny_federation())


def _largest(state: StateDict) -> torch.Tensor:
    return max(state.values(), key=lambda t: t.numel())


def _flip_inside(path: Path, tensor: torch.Tensor, count: int = FLIP) -> None:
    """Invert ``count`` bytes in the middle of ``tensor``'s data in ``path``; same size."""
    data = bytearray(path.read_bytes())
    raw = tensor.contiguous().numpy().tobytes()
    start = data.find(raw)
    assert start >= 0 and len(raw) >= count, "the tensor's bytes are stored verbatim"
    middle = start + (len(raw) - count) // 2
    data[middle : middle + count] = bytes(b ^ 0xFF for b in data[middle : middle + count])
    path.write_bytes(bytes(data))


def _replace_once(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) == 1 and len(old) == len(new)
    path.write_bytes(data.replace(old, new))


def _loads_silently(path: Path, key: str, clean: torch.Tensor) -> None:
    """`torch.load` accepts the damaged file and returns different values: the silent case."""
    damaged = torch.load(path, map_location="cpu", weights_only=True)
    assert not torch.equal(damaged["state"][key], clean)


def _same(a: StateDict, b: StateDict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_flipped_bytes_in_a_cache_entry_are_caught_and_the_phase_recomputed(
    tmp_path: Path,
) -> None:
    clean = _experiment(tmp_path).pretrain()
    (entry,) = tmp_path.glob("pretrain-*.pt")
    key, tensor = next((k, v) for k, v in clean.state.items() if v is _largest(clean.state))
    _flip_inside(entry, tensor)
    _loads_silently(entry, key, tensor)

    with pytest.warns(FedNotWarning) as caught:
        again = _experiment(tmp_path).pretrain()
    message = str(caught[0].message)
    assert str(entry) in message and "content digest does not match" in message
    assert "recomputing it" in message
    assert not again.cached and _same(again.state, clean.state)
    assert _experiment(tmp_path).pretrain().cached, "the recomputed entry replaced the damaged one"


def test_a_changed_string_in_a_cache_entry_is_caught(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    cache.save("k", {"state": {"w": torch.ones(3)}, "log": {"stop_reason": "budget spent"}})
    _replace_once(tmp_path / "k.pt", b"budget spent", b"budget spunt")
    assert torch.load(tmp_path / "k.pt", weights_only=True)["log"]["stop_reason"] == "budget spunt"
    with pytest.warns(FedNotWarning, match="content digest does not match"):
        assert cache.load("k") is None
    assert not (tmp_path / "k.pt").exists(), "the damaged entry is removed"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_an_unreadable_cache_entry_is_reported_with_its_reason(tmp_path: Path, damage: str) -> None:
    cache = ModelCache(tmp_path)
    cache.save("k", {"state": {"w": torch.arange(1000.0)}})
    path = tmp_path / "k.pt"
    data = path.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "garbage": bytes(range(256)) * 8, "empty": b""}
    path.write_bytes(damaged[damage])
    with pytest.warns(FedNotWarning) as caught:
        assert cache.load("k") is None
    message = str(caught[0].message)
    assert f"Cache entry {path} is unreadable (" in message and "recomputing it" in message
    reason = message.split("is unreadable (", 1)[1]
    assert reason[0].isalpha() and "Error" in reason.split(")")[0], message


def test_a_damaged_partial_checkpoint_restarts_its_phase(tmp_path: Path) -> None:
    uninterrupted = _experiment(tmp_path / "clean", rounds=4).pretrain()
    with pytest.raises(KeyboardInterrupt), interrupted_at_round(3):
        _experiment(tmp_path, rounds=4).pretrain()
    (partial,) = tmp_path.glob("*.partial.pt")
    saved = torch.load(partial, weights_only=True)["state"]
    key = next(k for k, v in saved.items() if v is _largest(saved))
    _flip_inside(partial, saved[key])
    _loads_silently(partial, key, saved[key])

    with pytest.warns(FedNotWarning, match="restarting its phase from the first round") as caught:
        resumed = _experiment(tmp_path, rounds=4).pretrain()
    assert str(partial) in str(caught[0].message)
    assert [r.round for r in resumed.log.rounds] == [1, 2, 3, 4]
    assert _same(resumed.state, uninterrupted.state)


def _checkpoint(path: Path, **meta: object) -> StateDict:
    state = {"w": torch.linspace(-1.0, 1.0, 500), "b": torch.zeros(4)}
    save_checkpoint(path, state, tiny_config(), 0, "pretrain", **meta)
    return state


def test_a_checkpoint_carries_its_digest_and_loads_cleanly(tmp_path: Path) -> None:
    state = _checkpoint(tmp_path / "model.pt")
    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    assert raw["format"] == "fednot-checkpoint-2" and raw[DIGEST_KEY] == content_digest(
        {k: v for k, v in raw.items() if k != DIGEST_KEY}
    )
    payload, config = load_checkpoint(tmp_path / "model.pt")  # a warning would fail the test
    assert _same(payload["state"], state) and config.train == tiny_config().train
    assert payload["seed"] == 0 and DIGEST_KEY not in payload


def test_a_checkpoint_with_flipped_tensor_bytes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    state = _checkpoint(path)
    _flip_inside(path, state["w"])
    _loads_silently(path, "w", state["w"])
    with pytest.raises(ConfigError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert f"Checkpoint {path} is damaged" in message and "Re-create it" in message


def test_a_checkpoint_with_a_changed_number_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    _checkpoint(path, comm_bytes=1234.5678)
    _replace_once(path, struct.pack(">d", 1234.5678), struct.pack(">d", 9234.5678))
    assert torch.load(path, weights_only=True)["comm_bytes"] == 9234.5678
    with pytest.raises(ConfigError, match="is damaged"):
        load_checkpoint(path)


def test_a_truncated_checkpoint_is_refused_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    _checkpoint(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ConfigError, match=r"is unreadable \(\w+Error.*Re-create it"):
        load_checkpoint(path)


def test_the_cli_reports_a_damaged_checkpoint_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.pt"
    state = _checkpoint(path)
    _flip_inside(path, state["w"])
    assert main(["eval", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert "is damaged" in err and "Traceback" not in err


def _legacy(path: Path, **payload: object) -> None:
    """A format-1 checkpoint, as fednot wrote them before the digest (plain `torch.save`)."""
    torch.save({"format": "fednot-checkpoint-1", **payload}, path)


@pytest.mark.parametrize("missing", ["state", "config", "seed"])
def test_a_checkpoint_missing_an_entry_names_it(tmp_path: Path, missing: str) -> None:
    path = tmp_path / "model.pt"
    entries = {"state": {"w": torch.ones(2)}, "config": {}, "seed": 0}
    del entries[missing]
    _legacy(path, **entries)
    with pytest.warns(FedNotWarning, match="cannot be verified"):
        with pytest.raises(ConfigError, match=f"lacks a valid `{missing}`"):
            load_checkpoint(path)
    save_verified({"format": "fednot-checkpoint-2", **entries}, path)
    with pytest.raises(ConfigError, match=f"lacks a valid `{missing}`"):
        load_checkpoint(path)


def test_a_checkpoint_whose_config_does_not_parse_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    config = {"train": {"lr": "fast"}}
    save_verified({"format": "fednot-checkpoint-2", "state": {}, "config": config, "seed": 0}, path)
    with pytest.raises(
        ConfigError, match=r"Checkpoint .*model\.pt holds a configuration.*train\.lr"
    ):
        load_checkpoint(path)


def test_a_legacy_checkpoint_loads_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    _legacy(path, state={"w": torch.ones(2)}, config={}, seed=3)
    with pytest.warns(FedNotWarning, match=r"model\.pt .*cannot be verified"):
        payload, _ = load_checkpoint(path)
    assert payload["seed"] == 3


def test_the_digest_covers_content_not_layout() -> None:
    a = {"x": torch.arange(6.0).reshape(2, 3), "y": [1, 2.5, "s", None, True], "z": {"k": 0}}
    b = {"z": {"k": 0}, "y": [1, 2.5, "s", None, True], "x": torch.arange(6.0).reshape(2, 3)}
    assert content_digest(a) == content_digest(b)
    assert content_digest(a) == content_digest({**a, "x": a["x"].t().contiguous().t()})
    variants = [
        {**a, "x": a["x"].reshape(3, 2)},
        {**a, "x": a["x"].double()},
        {**a, "y": [1.0, 2.5, "s", None, True]},
        {**a, "y": [1, 2.5, "s", None, 1]},
        {**a, "y": [1, 2.5, "s", "None", True]},
        {**a, "z": {"k": 0, "": None}},
    ]
    digests = {content_digest(v) for v in variants}
    assert len(digests) == len(variants) and content_digest(a) not in digests
    flipped = a["x"].clone()
    flipped.view(torch.int32)[0] ^= 1  # one bit of one float
    assert content_digest({**a, "x": flipped}) != content_digest(a)
    with pytest.raises(TypeError, match="Cannot compute a content digest of a set"):
        content_digest({"s": {1, 2}})


def test_a_cache_entry_without_a_digest_is_not_trusted(tmp_path: Path) -> None:
    torch.save({"state": {"w": torch.ones(3)}}, tmp_path / "k.pt")
    with pytest.warns(FedNotWarning, match="carries no content digest"):
        assert ModelCache(tmp_path).load("k") is None
