"""The Flower extra's boundary and its pure parts.

The core must import without flwr (checked in a subprocess where flwr is blocked), the extra
must say how to install it, and the conversions, request parsing and settings must be right.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest

from fednot.errors import ConfigError

_BLOCKED = "import sys; sys.modules['flwr'] = None\n"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKED + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_core_imports_without_flwr() -> None:
    done = _python(
        """
        import importlib, pkgutil
        import fednot, fednot.cli.app
        skipped = ("fednot.integrations.flower.", "fednot.integrations.flower")
        names = [m.name for m in pkgutil.walk_packages(fednot.__path__, "fednot.")
                 if not m.name.startswith(skipped)]
        for name in names:
            importlib.import_module(name)
        assert "flwr" not in {m.split(".")[0] for m in sys.modules if sys.modules[m]}
        print(len(names))
        """
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 50  # every module of the core was imported


def test_the_flower_extra_without_flwr_says_how_to_install_it() -> None:
    done = _python(
        """
        try:
            import fednot.integrations.flower
        except ImportError as e:
            print(e)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'fednot[flower]'" in done.stdout


def test_the_cli_declares_flower_up_without_flwr() -> None:
    done = _python(
        """
        import argparse
        from fednot.errors import FedNotError
        from fednot.cli.flower import register_cli
        parser = argparse.ArgumentParser()
        register_cli(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["flower", "up", "--forget", "1=client"])
        try:
            args.handler(args)
        except FedNotError as e:
            print(e)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'fednot[flower]'" in done.stdout


def test_parse_forget_reads_client_requests() -> None:
    from fednot.cli.flower import parse_forget

    assert parse_forget(["1=client", "2=classes=0,3"]) == {1: "client", 2: "classes=0,3"}
    with pytest.raises(ConfigError, match="CLIENT=REQUEST"):
        parse_forget(["client"])


def test_register_cli_adds_flower_up() -> None:
    from fednot.cli.flower import register_cli

    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["flower", "up", "--set", "train.rounds=2", "--single-run"])
    assert args.overrides == ["train.rounds=2"] and args.single_run and args.methods is None
    args = parser.parse_args(["flower", "up", "--method", "ft", "--method", "not"])
    assert args.methods == ["ft", "not"]


# -- pure parts (need flwr's record classes) -------------------------------------------------


@pytest.fixture
def records():  # type: ignore[no-untyped-def]
    pytest.importorskip(
        "flwr", reason="flwr is not installed: pip install -c constraints.txt -e '.[flower]'"
    )
    from fednot.integrations.flower import records

    return records


def test_request_text_forms(records) -> None:  # type: ignore[no-untyped-def]
    from fednot.types import ForgetRequest

    assert records.parse_request("client", 3) == ForgetRequest(clients=(3,))
    assert records.parse_request("classes=0,2", 1) == ForgetRequest(clients=(1,), classes=(0, 2))
    assert records.parse_request("indices=5", 0) == ForgetRequest(clients=(0,), indices=(5,))
    with pytest.raises(ConfigError, match="Expected a forget request"):
        records.parse_request("everyone", 0)


def test_requests_round_trip_through_config_records(records) -> None:  # type: ignore[no-untyped-def]
    from flwr.app import ConfigRecord

    from fednot.types import ForgetRequest

    for request in (
        ForgetRequest(clients=(1,)),
        ForgetRequest(clients=(0, 2), classes=(3,)),
        ForgetRequest(clients=(1,), indices=(4, 9)),
    ):
        config = ConfigRecord(records.request_to_config(request))
        assert records.request_from_config(config) == request
    assert records.request_from_config(ConfigRecord({"client-id": 1})) is None


def test_negate_arrays_is_nots_negation(records) -> None:  # type: ignore[no-untyped-def]
    import torch

    state = {"a.weight": torch.ones(2, 2), "a.bias": torch.ones(2), "n": torch.tensor(3)}
    negated = records.to_state(records.negate_arrays(records.to_arrays(state), ["a.weight"]))
    assert torch.equal(negated["a.weight"], -state["a.weight"])
    assert torch.equal(negated["a.bias"], state["a.bias"]) and negated["n"].dtype == torch.int64
    twice = records.negate_arrays(
        records.negate_arrays(records.to_arrays(state), ["a.weight"]), ["a.weight"]
    )
    assert all(torch.equal(records.to_state(twice)[k], v) for k, v in state.items())


def test_screen_request_accepts_only_the_senders_own_data(records) -> None:  # type: ignore[no-untyped-def]
    from fednot.integrations.flower.identity import screen_request
    from fednot.types import ForgetRequest

    assert screen_request(1, ForgetRequest(clients=(1,), classes=(0,))) is None
    assert "client 1 asked to forget data of client(s) [2]" in str(
        screen_request(1, ForgetRequest(clients=(2,)))
    )
    assert screen_request(1, ForgetRequest(clients=(1, 2))) is not None


def test_merge_requests_groups_compatible_requests(records) -> None:  # type: ignore[no-untyped-def]
    from fednot.integrations.flower.identity import FiledRequest, merge_requests
    from fednot.types import ForgetRequest

    filed = [
        FiledRequest(2, ForgetRequest(clients=(2,))),
        FiledRequest(0, ForgetRequest(clients=(0,))),
        FiledRequest(1, ForgetRequest(clients=(1,), classes=(3,))),
    ]
    assert merge_requests(filed, separate=False) == [
        ForgetRequest(clients=(0, 2)),
        ForgetRequest(clients=(1,), classes=(3,)),
    ]
    assert len(merge_requests(filed, separate=True)) == 3


def test_settings_read_fednot_config_and_overrides(records) -> None:  # type: ignore[no-untyped-def]
    from fednot.configio import to_toml
    from fednot.integrations.flower.settings import parse_settings
    from fednot.testing import tiny_config

    config = tiny_config()
    overrides = 'train.rounds=5 unlearn.methods=["not"] model.name="mlp"'
    settings = parse_settings({"fednot-config": to_toml(config), "fednot-set": overrides})
    assert settings.config.train.rounds == 5 and settings.config.unlearn.methods == ("not",)
    assert settings.config.data == config.data and settings.seed == 0
    assert settings.relayed_request(2) is None
    with pytest.raises(ConfigError, match="Unknown Flower run-config keys"):
        parse_settings({"rounds": 3})


def test_write_app_declares_every_run_config_key(tmp_path: Path, records) -> None:  # type: ignore[no-untyped-def]
    from fednot.integrations.flower.local.appdir import write_app
    from fednot.integrations.flower.settings import RUN_CONFIG_DEFAULTS

    app = write_app(tmp_path / "app", {"fednot-config": "[train]\nrounds = 2\n", "seed": 3})
    data = tomllib.loads((app / "pyproject.toml").read_text())
    config = data["tool"]["flwr"]["app"]["config"]
    assert set(config) == set(RUN_CONFIG_DEFAULTS) and config["seed"] == 3
    assert tomllib.loads(config["fednot-config"]) == {"train": {"rounds": 2}}
    module, attr = data["tool"]["flwr"]["app"]["components"]["serverapp"].split(":")
    assert (app / f"{module}.py").exists() and attr == "server_app"


def test_every_name_the_flower_extra_exports_exists(records) -> None:  # type: ignore[no-untyped-def]
    import fednot.integrations.flower as flower

    assert all(hasattr(flower, name) for name in flower.__all__)


def test_deploy_refuses_methods_it_cannot_serve_before_starting_anything(
    tmp_path: Path,
    records,  # type: ignore[no-untyped-def]
) -> None:
    from fednot.configio import to_toml
    from fednot.integrations.flower.local.deploy import deploy
    from fednot.testing import tiny_config

    toml = to_toml(tiny_config())
    for methods, match in [
        ((), "one or more distinct methods"),
        (("not", "not"), "one or more distinct methods"),
        (("no-such-method",), "Unknown unlearner"),
        (("ssd",), "does not serve a client's request"),
        (("pgd",), "reads the training history"),  # two runs: the history is gone
    ]:
        with pytest.raises(ConfigError, match=match):
            deploy(toml, 3, methods=methods, workdir=tmp_path)
    for clients in (0, 2000):  # sizes are checked before a SuperNode starts
        with pytest.raises(ConfigError, match="one SuperNode process per client"):
            deploy(toml, clients, workdir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing was written or started


def test_flower_up_refuses_a_ledger_with_several_methods_before_starting_anything(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    records,  # type: ignore[no-untyped-def]
) -> None:
    from fednot.cli.app import main
    from fednot.integrations.flower.local.deploy import check_methods

    ledger, work = tmp_path / "ledger.json", tmp_path / "work"
    argv = ["flower", "up", "--ledger", str(ledger), "--method", "not", "--method", "ft"]
    assert main([*argv, "--out", str(work)]) == 2
    out, err = capsys.readouterr()
    assert "records the requests of one method" in err and "one --method per ledger" in err
    assert "Starting" not in out and not ledger.exists() and not work.exists()
    check_methods(("not",), False, ledger)  # one method per ledger: both modes
    check_methods(("not",), True, ledger)
    check_methods(("not", "ft"), False)  # several methods without a ledger


def test_deploy_hands_every_run_the_ledger_as_an_absolute_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    records,  # type: ignore[no-untyped-def]
) -> None:
    """No process starts: a stand-in deployment records what each run was given."""
    from fednot.configio import to_toml
    from fednot.integrations.flower.local import deploy as module
    from fednot.testing import tiny_config

    runs: list[tuple[Path, dict[str, Any]]] = []

    class Stand:
        def __init__(self, nodes: object, workdir: Path) -> None: ...
        def __enter__(self) -> Stand:
            return self

        def __exit__(self, *exc: object) -> None: ...
        def run(self, app: Path, overrides: dict[str, Any], timeout: float, echo: bool) -> Any:
            runs.append((app, overrides))
            Path(overrides["out"]).mkdir(parents=True)
            (Path(overrides["out"]) / "result.json").write_text("{}")
            return module.RunOutput(0, "", 0.0)

    monkeypatch.setattr(module, "LocalDeployment", Stand)
    monkeypatch.chdir(tmp_path)
    for single_run, stages in [(False, ["pretrain", "unlearn"]), (True, ["all"])]:
        runs.clear()
        work = tmp_path / f"work-{single_run}"
        module.deploy(
            to_toml(tiny_config()), 3, workdir=work, single_run=single_run, ledger=Path("l.json")
        )
        assert [o["stage"] for _, o in runs] == stages
        config = tomllib.loads((runs[0][0] / "pyproject.toml").read_text())
        assert config["tool"]["flwr"]["app"]["config"]["ledger"] == str(tmp_path / "l.json")
