"""A checkpoint is a file, possibly downloaded: loading it never imports the code it names."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest
import torch

from fednot.checkpoint import FORMAT, foreign_code, load_checkpoint
from fednot.cli.app import main
from fednot.configio import to_dict
from fednot.errors import ConfigError
from fednot.store.cache import save_verified
from fednot.testing import set_args, tiny_config

HELPER = """
from pathlib import Path
Path("{marker}").write_text("imported")
def load(*args, **kwargs):
    raise SystemExit("never called in these tests")
"""


def _checkpoint(path: Path, **names: object) -> None:
    """A checkpoint, digest intact, whose configuration names ``names`` (section.key -> value)."""
    config = to_dict(tiny_config())
    for dotted, value in names.items():
        section, key = dotted.split(".")
        config[section][key] = value
    state = {"w": torch.zeros(3)}
    save_verified(
        {"format": FORMAT, "kind": "pretrain", "seed": 0, "config": config, "state": state}, path
    )


@pytest.fixture
def in_folder_with_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder holds ``helper.py``, which leaves a marker file when imported."""
    marker = tmp_path / "imported.txt"
    (tmp_path / "helper.py").write_text(HELPER.format(marker=marker))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(__import__("sys").modules, "helper", raising=False)
    return marker


@pytest.mark.parametrize(
    "names",
    [
        {"model.name": "helper:load"},
        {"data.dataset": "helper:load"},
        {"unlearn.methods": ["retrain", "helper:load"]},
    ],
    ids=["model", "dataset", "method"],
)
def test_a_checkpoint_naming_code_is_refused_without_importing_it(
    in_folder_with_helper: Path,
    tmp_path: Path,
    names: dict[str, object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "model.pt"
    _checkpoint(path, **names)
    with pytest.raises(ConfigError, match=r"names code to import .*'helper:load'.*--trust-code"):
        load_checkpoint(path)
    assert main(["eval", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert "names code to import" in err and "Traceback" not in err
    assert not in_folder_with_helper.exists()  # helper.py never ran


def test_the_opt_in_imports_what_the_checkpoint_names(
    in_folder_with_helper: Path, tmp_path: Path
) -> None:
    path = tmp_path / "model.pt"
    _checkpoint(path, **{"model.name": "helper:load"})
    _, config = load_checkpoint(path, trust_code=True)
    assert config.model.name == "helper:load" and not in_folder_with_helper.exists()
    with contextlib.suppress(BaseException):  # helper.load is no model; the import is the point
        main(["eval", "--checkpoint", str(path), "--trust-code", "--set", "eval.mia_repeats=1"])
    assert in_folder_with_helper.read_text() == "imported"


def test_a_string_the_user_typed_is_trusted(tmp_path: Path) -> None:
    config = to_dict(tiny_config())
    config["unlearn"]["methods"] = ["retrain", "pkg.mod:Method"]
    assert foreign_code(config, []) == [("unlearn.methods", "pkg.mod:Method")]
    typed = ['unlearn.methods=["pkg.mod:Method"]']
    assert foreign_code(config, typed) == []  # the user named it on the command line
    replaced = ['unlearn.methods=["not"]']
    assert foreign_code(config, replaced) == []  # the checkpoint's methods do not run
    config["model"]["name"] = "os:abort"
    assert foreign_code(config, typed) == [("model.name", "os:abort")]


@pytest.mark.parametrize("name", ["os:abort", "this:s"])
def test_standard_library_strings_do_not_run_either(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.pt"
    _checkpoint(path, **{"model.name": name})
    assert main(["eval", "--checkpoint", str(path)]) == 2  # os.abort would kill the process
    out, err = capsys.readouterr()
    assert "Beautiful is better than ugly" not in out + err  # `import this` prints the Zen
    assert "names code to import" in err and os.getpid() > 0


def test_registry_names_need_no_opt_in(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    _checkpoint(path)  # cnn/mlp, mnist5k, retrain/ft/not: fednot's own registry
    payload, config = load_checkpoint(path)
    assert config.model.name == "mlp" and payload["seed"] == 0


def test_a_method_name_cannot_hold_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "escape.py").write_text(
        "from fednot.unlearning.fine_tune import FT\n"
        "class Escape(FT):\n    name = '../../outside'\n"
    )
    monkeypatch.chdir(tmp_path)
    from fednot.unlearning.registry import create_unlearner

    with pytest.raises(ConfigError, match=r"may not hold a path.*name = '\.\./\.\./outside'"):
        create_unlearner("escape:Escape")


def test_unlearn_never_writes_over_its_source_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.pt"
    _checkpoint(path)
    before = path.read_bytes()
    argv = ["unlearn", "--checkpoint", str(path), "--out", str(tmp_path / "." / "model.pt")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "is the command's input" in err and "Traceback" not in err
    assert path.read_bytes() == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_out_never_replaces_a_fifo_or_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert main(["train", "--set", "train.rounds=1", "--out", str(fifo)]) == 2
    assert "not a regular file" in capsys.readouterr().err
    assert fifo.is_fifo()
    run_out = ["run", "--set", "train.rounds=1", "--out", "/dev/null"]
    assert main(run_out) == 2  # a run folder, and /dev/null is a device
    assert "not a regular file or folder" in capsys.readouterr().err
    assert Path("/dev/null").is_char_device()


@pytest.mark.parametrize("what", ["config", "checkpoint", "forget-ids"])
def test_a_fifo_named_as_an_input_is_refused_not_read(
    what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reading a FIFO blocks until a writer comes: fednot refuses it before opening it."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    argv = {
        "config": ["config", "-c", str(fifo)],
        "checkpoint": ["eval", "--checkpoint", str(fifo)],
        "forget-ids": [
            "run",
            "-q",
            *set_args(
                "data.num_clients=3",
                "model.name=mlp",
                "scenario.kind=instance",
                f"scenario.forget_ids={fifo}",
            ),
            "--out",
            str(tmp_path / "run"),
        ],
    }[what]
    signal.alarm(60)  # a regression blocks on the FIFO: fail instead of hanging the suite
    try:
        assert main(argv) == 2
    finally:
        signal.alarm(0)
    assert "not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize("dataset", ["../../escape:load", "/abs/path.mod:load", "a/../../b"])
def test_default_output_folders_stay_under_out_dir(dataset: str, tmp_path: Path) -> None:
    import argparse

    from fednot.benchmark.runner import default_run_dir
    from fednot.cli.commands import _out_folder
    from fednot.config import DataConfig, RunConfig

    config = RunConfig(data=DataConfig(dataset=dataset), out_dir=str(tmp_path / "runs"))
    none = argparse.Namespace(out=None)
    for folder in (default_run_dir(config), _out_folder(none, config, f"audit-{dataset}")):
        assert folder.parent == tmp_path / "runs", folder  # one level under out_dir, no escape
        assert "/" not in folder.name and ".." not in folder.name
