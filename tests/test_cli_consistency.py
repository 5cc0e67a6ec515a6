"""One configuration language across the commands (issue 29).

``--set`` lists, ``run --seeds``, the preset ``bench`` applies, every key in ``fednot config``,
and what ``fednot methods`` says.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import pytest
import torch

from fednot.cli import commands
from fednot.cli.app import build_parser, main
from fednot.configio import load_config, to_dict
from fednot.errors import ConfigError

torch.set_num_threads(1)

ONE_THREAD = ["--threads", "1"]  # `fednot config` applies the thread count to this process


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("seeds=0,1", "seeds", (0, 1)),
        ("seeds= 2 , 3 ", "seeds", (2, 3)),
        ("seeds=3", "seeds", (3,)),
        ("unlearn.forget_clients=1,2", "forget_clients", (1, 2)),
        ("unlearn.methods=retrain,not", "methods", ("retrain", "not")),
        ("unlearn.methods=not", "methods", ("not",)),
        ('unlearn.methods=["retrain","not"]', "methods", ("retrain", "not")),
        ("seeds=[4, 5]", "seeds", (4, 5)),
    ],
)
def test_set_takes_a_comma_list_for_a_list_key(
    override: str, key: str, expected: tuple[object, ...]
) -> None:
    config = load_config(None, [override])
    value = config.seeds if key == "seeds" else getattr(config.unlearn, key)
    assert value == expected


def test_set_comma_list_for_a_method_option_that_takes_a_list_or_one_name() -> None:
    methods = "unlearn.methods=retrain,not"
    both = load_config(None, [methods, "options.not.layers=conv1,fc2"])
    one = load_config(None, [methods, "options.not.layers=fc2"])
    assert both.options["not"]["layers"] == ["conv1", "fc2"]
    assert one.options["not"]["layers"] == "fc2"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seeds=0,x", "Expected `seeds[1]` to be int, got 'x'"),
        ("seeds=0,,1", "Expected `seeds` to be comma-separated values with none empty"),
        ("unlearn.methods=retrain,", "none empty"),
        ('unlearn.methods="retrain,not"', "Expected `unlearn.methods` to be a list"),
        ("unlearn.forget_clients=0,1.5", "Expected `unlearn.forget_clients[1]` to be int"),
    ],
)
def test_bad_list_elements_are_clear_errors(
    override: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(None, [override])
    assert main(["config", *ONE_THREAD, "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@pytest.mark.parametrize("command", ["run", "bench"])
def test_run_and_bench_take_the_same_methods_and_seeds(command: str) -> None:
    args = _args([command, "--preset", "mnist5k-cnn", "--seeds", "0,1", "--methods", "retrain,not"])
    config = commands.config_of(args)
    assert config.seeds == (0, 1) and config.unlearn.methods == ("retrain", "not")
    same = commands.config_of(
        _args(
            [
                command,
                "--preset",
                "mnist5k-cnn",
                "--set",
                "seeds=0,1",
                "--set",
                "unlearn.methods=retrain,not",
            ]
        )
    )
    assert same == config


def test_run_methods_all_and_bad_seeds() -> None:
    config = commands.config_of(_args(["run", "--methods", "all", "--seeds", "7"]))
    assert {"retrain", "not", "ga"} <= set(config.unlearn.methods) and config.seeds == (7,)
    with pytest.raises(ConfigError, match="comma-separated seeds"):
        commands.config_of(_args(["run", "--seeds", "0,a"]))


def test_run_and_bench_share_one_definition_of_the_flags() -> None:
    def helps(command: str) -> dict[str, str | None]:
        sub = next(
            a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
        ).choices[command]
        return {
            a.dest: a.help for a in sub._actions if a.dest in ("chosen_methods", "chosen_seeds")
        }

    assert helps("run") == helps("bench") and len(helps("run")) == 2


@pytest.fixture
def bench_calls(monkeypatch: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    """`fednot bench` with `run` replaced by a recorder, and progress output on."""
    calls: list[argparse.Namespace] = []
    monkeypatch.setattr(commands, "run", lambda args: calls.append(args) or 0)
    monkeypatch.delenv("CI", raising=False)
    return calls


def test_bench_says_which_preset_it_applies(
    bench_calls: list[argparse.Namespace], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench"]) == 0
    err = capsys.readouterr().err
    assert "preset: mnist5k-cnn (the default of fednot bench; --preset to choose another)" in err
    assert bench_calls[-1].preset == "mnist5k-cnn"

    mine = tmp_path / "my.toml"
    mine.write_text("[train]\nrounds = 3\n")
    assert main(["bench", "-c", str(mine)]) == 0
    assert f"; -c {mine} applied over it" in capsys.readouterr().err

    assert main(["bench", "--preset", "fmnist-cnn"]) == 0
    err = capsys.readouterr().err
    assert "preset: fmnist-cnn" in err and "default" not in err

    assert main(["bench", "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert [a.preset for a in bench_calls] == ["mnist5k-cnn"] * 2 + ["fmnist-cnn", "mnist5k-cnn"]


def test_bench_help_names_its_preset_and_how_c_layers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "mnist5k-cnn unless --preset names another" in text
    assert "-c FILE apply over that preset" in text


def test_config_prints_every_key_and_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", *ONE_THREAD]) == 0
    text = capsys.readouterr().out
    lines = {line.strip() for line in text.splitlines()}
    config = load_config(None, ["threads=1"])

    def walk(table: dict[str, object]) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                walk(value)  # type: ignore[arg-type]
            elif value is None:
                assert f"# {key} = None" in lines, key
            else:
                assert any(line.startswith(f"{key} = ") for line in lines), key

    walk(to_dict(config))
    assert "# curve_subset = None" in lines and "# recovery_lr = None" in lines
    path = tmp_path / "printed.toml"
    path.write_text(text)
    assert tomllib.loads(text) and load_config(path) == config  # valid TOML, the same config


def test_config_lists_the_options_of_each_method_run(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["config", *ONE_THREAD, "--set", "unlearn.methods=retrain,not,pgd"]
    assert main([*argv, "--set", "options.not.layers=fc2"]) == 0
    text = capsys.readouterr().out
    assert "# [options.retrain]  (no options)" in text
    block = text[text.index("# [options.not]") :]
    assert '# layers = "first"  (default; set above)' in block
    assert "# negate_bias = false" in block
    assert "# [options.pgd]" in block and "# tau = None" in block
    assert '[options.not]\nlayers = "fc2"' in text  # the value set, as a real table
    assert "# [options.ft]" not in text  # not run


def test_methods_says_what_each_does_where_it_applies_and_what_it_needs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["methods"]) == 0
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    assert "not NoT Negate chosen layers of the global model" in flat
    assert "federaser FedEraser Replay the stored FL rounds" in flat
    assert "scenarios: client, backdoor; needs: history" in flat  # FedEraser
    assert "scenarios: centralized; needs: forget data" in flat  # GA
    assert "scenarios: all; needs: none" in flat  # NoT, FT, Retrain
    assert "needs: history, server data" in flat  # FUKD
    assert all(len(line) <= 100 for line in text.splitlines())
