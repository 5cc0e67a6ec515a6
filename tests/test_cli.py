"""End to end through the command line, on the embedded MNIST-5k with a small MLP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fednot.cli.app import main
from fednot.testing import set_args

FAST = [
    *set_args(
        "data.num_clients=3",
        "model.name=mlp",
        "model.options.hidden=[32]",
        "train.rounds=2",
        "train.batch_size=64",
        "unlearn.recovery_rounds=2",
        "eval.curve_every=1",
        "eval.mia_repeats=5",  # the MIA's resolution is not what these tests check
        "eval.mia_null_permutations=20",
    ),
]
KEYS = {
    "method",
    "seed",
    "retain_acc",
    "forget_acc",
    "test_acc",
    "mia",
    "avg_gap",
    "comm_bytes",
    "flops",
}


def test_run_writes_a_complete_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    cache = ["--set", f"cache_dir={tmp_path / 'cache'}"]
    assert main(["run", *FAST, *cache, "--set", "seeds=[0, 1]", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "\nNoT " in printed and "\nRetrain " in printed and "\nFT " in printed  # compact

    results = json.loads((out / "results.json").read_text())
    records = results["records"]
    assert {(r["method"], r["seed"]) for r in records} == {
        (m, s) for m in ("original", "retrain", "retrain_prime", "ft", "not") for s in (0, 1)
    }
    for record in records:
        assert KEYS <= set(record)
        assert 0 <= record["retain_acc"] <= 100 and 0 <= record["mia"] <= 100
    retrain = [r for r in records if r["method"] == "retrain"]
    assert all(r["avg_gap"] == 0 for r in retrain)
    not_ = [r for r in records if r["method"] == "not"]
    assert all(r["comm_bytes"] > 0 and r["flops"] > 0 and r["rounds"] == 2 for r in not_)
    assert all(r["notes"]["negated_layers"] == ["fc1"] for r in not_)
    assert results["logs"]["not/seed0"]["rounds"][0]["extra"]["forget_acc"] >= 0
    report = (out / "results.md").read_text()
    assert report.count("\n|") >= 5 and "## What the numbers support" in report
    assert "## Paired differences in average gap" in report and "**Minus NoT**" in report
    assert (out / "results.png").stat().st_size > 10_000
    assert (out / "tradeoff.png").stat().st_size > 10_000
    ft = next(row for row in results["summary"] if row["method"] == "ft")
    assert ft["paired"]["not"]["end"]["n"] == 2 and set(ft["gap_at"]) == {
        "end",
        "comm25",
        "comm50",
        "comm100",
        "flops25",
        "flops50",
        "flops100",
    }
    assert {"not", "ft"} <= set(results["tradeoff"])
    assert (out / "partition-seed0.json").exists() and (out / "partition-seed1.json").exists()
    assert "[train]" in (out / "config.toml").read_text()
    assert (out / "models" / "not-seed1.pt").exists()

    # The same command again resumes: every cell is already done.
    assert main(["run", *FAST, *cache, "--set", "seeds=[0, 1]", "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["records"] == records

    # A new run directory reuses the cached pre-trained and retrained models.
    again = tmp_path / "again"
    assert main(["run", *FAST, *cache, "--set", "seeds=[0]", "--out", str(again)]) == 0
    records2 = json.loads((again / "results.json").read_text())["records"]
    assert [r["cached"] for r in records2 if r["method"] == "retrain"] == [True]
    for method in ("not", "retrain"):
        a = next(r for r in records if r["method"] == method and r["seed"] == 0)
        b = next(r for r in records2 if r["method"] == method and r["seed"] == 0)
        assert a["test_acc"] == b["test_acc"] and a["forget_acc"] == b["forget_acc"]


def test_run_refuses_a_directory_of_another_configuration(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"config": {"seeds": [9]}, "records": []}))
    assert main(["run", *FAST, "--set", "cache_dir=", "--out", str(out)]) == 2


def test_train_unlearn_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = [*FAST, "--set", "cache_dir="]
    model = tmp_path / "model.pt"
    unlearned = tmp_path / "unlearned.pt"
    assert main(["train", *base, "--out", str(model)]) == 0
    assert (
        main(
            [
                "unlearn",
                "--checkpoint",
                str(model),
                "--method",
                "not",
                "--forget-clients",
                "1",
                "--weights-only",
                "--out",
                str(unlearned),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(unlearned)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["forget_clients"] == [1]
    assert {"retain_acc", "forget_acc", "test_acc", "mia"} <= set(report)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--set", "train.lr=fast"], "Expected `train.lr` to be float"),
        (["run", "--set", 'unlearn.methods=["nto"]'], "Unknown unlearner 'nto'"),
        (["run", "--set", "data.dataset=cifar10"], "set data.root"),
        (["unlearn", "--checkpoint", "missing.pt", "--out", "x.pt"], "does not exist"),
    ],
)
def test_errors_are_one_clear_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_methods_and_config_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods"]) == 0
    assert "not" in capsys.readouterr().out
    assert main(["config", "--set", "train.rounds=5"]) == 0
    assert "rounds = 5" in capsys.readouterr().out


def test_flower_up_is_wired_and_rejects_a_bad_request(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("flwr", reason="flwr is not installed (the [flower] extra)")
    assert main(["flower", "up", "--forget", "client-one"]) == 2
    err = capsys.readouterr().err
    assert "Expected --forget CLIENT=REQUEST" in err and "Traceback" not in err
