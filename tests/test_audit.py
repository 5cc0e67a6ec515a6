"""`fednot audit` end to end on a small MNIST-5k federation: files, oracle sharing, resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from fednot.audit.sampler import ModelSampler, Task
from fednot.benchmark.experiment import Experiment
from fednot.cli.app import main
from fednot.config import UnlearnConfig
from fednot.testing import set_args, tiny_config, tiny_federation

SMALL = [
    *set_args(
        "data.num_clients=3",
        "data.client_samples=60",
        "model.name=mlp",
        "model.options.hidden=[16]",
        "train.rounds=2",
        "unlearn.recovery_rounds=2",
    ),
    "--models",
    "6",
    "--threads",
    "1",
]


@pytest.fixture(autouse=True)
def _one_thread_after() -> Iterator[None]:
    """The CLI sets torch's thread count for the process: give the next test back one thread."""
    yield
    torch.set_num_threads(1)


def _audit(out: Path, cache: Path | str, *extra: str) -> int:
    return main(["audit", *SMALL, "--set", f"cache_dir={cache}", "--out", str(out), *extra])


def _outputs(out: Path) -> dict[str, dict[str, dict[str, object]]]:
    """Each method's models by training seed, without their wall times."""
    saved = json.loads((out / "outputs.json").read_text())["outputs"]
    return {
        method: {
            k: {f: v for f, v in model.items() if f != "seconds"} for k, model in models.items()
        }
        for method, models in saved.items()
    }


def test_audit_writes_scores_tables_and_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "audit"
    assert _audit(out, tmp_path / "cache", "--methods", "ft,not") == 0
    for name in ("audit.json", "audit.md", "audit.png", "outputs.json", "config.toml"):
        assert (out / name).is_file(), name
    report = json.loads((out / "audit.json").read_text())
    rows = {row["method"]: row for row in report["rows"]}
    assert list(rows) == ["retrain", "ft", "not"]
    assert rows["retrain"]["full"] is None  # Retrain is scored against itself, by halves
    assert 0 <= rows["retrain"]["half"]["score"] <= 1
    for name in ("ft", "not"):
        full = rows[name]["full"]
        assert 0 <= full["ci"][0] <= full["score"] <= full["ci"][1] <= 1
        assert len(full["epsilons"]) == report["forget_samples"]
        assert rows[name]["models"] == 6
    assert report["models"] == 6 and report["half"] == 3
    assert [p["a"] for p in report["pairs"]] == ["ft"]
    printed = capsys.readouterr().out
    assert "forgetting quality (N = 6)" in printed and "Retrain against itself" in printed


def test_a_second_audit_of_another_method_trains_no_retrain_model(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _audit(tmp_path / "first", cache, "--methods", "ft") == 0

    def no_retraining(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Retrain model was trained again")

    with mock.patch.object(Experiment, "_train_anew", no_retraining):
        assert _audit(tmp_path / "second", cache, "--methods", "not") == 0
    first, second = _outputs(tmp_path / "first"), _outputs(tmp_path / "second")
    assert first["retrain"] == second["retrain"]
    assert set(second) == {"retrain", "not"}


def test_an_interrupted_audit_resumes_without_redoing_a_model(tmp_path: Path) -> None:
    out = tmp_path / "audit"
    calls: list[Task] = []
    stop_at = [4]
    original = ModelSampler.sample

    def counted(self: ModelSampler, task: Task) -> object:
        calls.append(task)
        if len(calls) == stop_at[0]:
            raise KeyboardInterrupt
        return original(self, task)

    with mock.patch.object(ModelSampler, "sample", counted):
        assert _audit(out, "", "--methods", "ft") == 130
        done = {(m, int(k)) for m, models in _outputs(out).items() for k in models}
        assert len(done) == 3
        calls.clear()
        stop_at[0] = 0
        assert _audit(out, "", "--methods", "ft") == 0
    assert not done & set(calls) and len(calls) == 12 - 3
    assert _audit(tmp_path / "straight", "", "--methods", "ft") == 0
    assert _outputs(out) == _outputs(tmp_path / "straight")  # bit-identical after resuming


def test_worker_processes_give_the_models_of_one_process(tmp_path: Path) -> None:
    assert _audit(tmp_path / "one", "", "--methods", "not") == 0
    jobs = ["--methods", "not", "--jobs", "2", "--threads", "2"]  # one thread per worker
    assert _audit(tmp_path / "two", "", *jobs) == 0
    assert _outputs(tmp_path / "one") == _outputs(tmp_path / "two")


def test_reseeded_experiments_share_data_and_differ_in_training() -> None:
    exp = Experiment(tiny_config(), 0, federation=tiny_federation())
    twin, again, other = exp.reseeded(1), exp.reseeded(1), exp.reseeded(2)
    assert twin.federation is exp.federation and twin.scenario is exp.scenario
    assert all(
        torch.equal(twin.initial_state[k], again.initial_state[k]) for k in twin.initial_state
    )
    assert not torch.equal(twin.initial_state["fc1.weight"], exp.initial_state["fc1.weight"])
    assert not torch.equal(twin.initial_state["fc1.weight"], other.initial_state["fc1.weight"])
    assert exp.seed == twin.seed == 0
    keys = {e.cache_key("x") for e in (exp, twin, other)}
    assert len(keys) == 3 and twin.cache_key("x") == again.cache_key("x")
    state = twin.unlearn(twin.initial_state, exp.scenario.request, "retrain").state
    same = again.unlearn(again.initial_state, exp.scenario.request, "retrain").state
    assert all(torch.equal(state[k], same[k]) for k in state)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--models", "5"], "at least 6 models"),
        (["--methods", " , "], "names no method"),
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--set", 'unlearn.target_val_acc="retrain"'], "does not define"),
        (["--methods", "nosuch"], "nosuch"),
    ],
)
def test_bad_audit_requests_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert _audit(tmp_path / "audit", "", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "audit" / "outputs.json").exists()


def test_an_audit_folder_of_another_configuration_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "audit"
    assert _audit(out, "", "--methods", "ft") == 0
    assert _audit(out, "", "--methods", "ft", "--models", "7") == 2
    assert "another configuration" in capsys.readouterr().err


def test_diverged_models_are_left_out_of_the_score_and_counted() -> None:
    from fednot.audit.outputs import ModelOutputs
    from fednot.audit.report import score_methods, statements
    from fednot.benchmark.runner import create_methods

    rng = np.random.default_rng(0)

    def model(shift: float) -> ModelOutputs:
        return ModelOutputs(rng.normal(shift, 1.0, size=20), 90.0, 80.0, 70.0, 1.0)

    outputs = {
        "retrain": {k: model(0.0) for k in range(8)},
        "ft": {k: model(3.0) for k in range(8)},
        "not": {k: model(0.0) for k in range(6)},
    }
    outputs["not"].update({k: ModelOutputs.of_divergence("nan loss", 1.0) for k in (6, 7)})
    again = ModelOutputs.from_dict(json.loads(json.dumps(outputs["not"][6].to_dict())))
    assert again.diverged == "nan loss" and again.confidences.size == 0
    methods = create_methods(tiny_config(unlearn=UnlearnConfig(methods=("ft", "not"))))
    report = score_methods(outputs, methods, 8, seed=0)
    rows = {row["method"]: row for row in report["rows"]}
    assert rows["not"]["models"] == 6 and rows["not"]["diverged"] == 2
    assert rows["not"]["full"]["score"] > rows["ft"]["full"]["score"]
    text = "\n".join(statements(report))
    assert "NoT forgets better than FT" in text and "2 of 8 models diverged" in text
