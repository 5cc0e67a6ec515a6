"""The sequence scenario: requests one after another, training between them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch

import fednot.federation.backend as backend_module
from fednot.benchmark.experiment import Experiment
from fednot.benchmark.results import REFERENCE, load
from fednot.benchmark.runner import Run
from fednot.benchmark.scenarios import SequenceScenario
from fednot.benchmark.sequence import Chain, SequenceRunner, check_sequence
from fednot.benchmark.sequence_run import SequenceRun
from fednot.cli.app import main
from fednot.config import DataConfig, EvalConfig, ModelConfig, TrainConfig, UnlearnConfig
from fednot.errors import ConfigError
from fednot.federation.local import local_train
from fednot.progress import Silent
from fednot.testing import set_args, tiny_config
from fednot.types import ForgetRequest
from fednot.unlearning.registry import create_unlearner

torch.set_num_threads(1)

TARGETS = (0, 2, 3)


def _config(**unlearn: Any) -> Any:
    return tiny_config(
        data=DataConfig(num_clients=5),
        model=ModelConfig(name="cnn", options={"channels": (4, 8)}),
        train=TrainConfig(rounds=2, batch_size=64),
        unlearn=UnlearnConfig(
            forget_clients=TARGETS, recovery_rounds=1, methods=("retrain", "ft", "not"), **unlearn
        ),
        eval=EvalConfig(
            curve_every=0, mia_folds=2, mia_repeats=2, mia_null_permutations=0, retrain_floor=False
        ),
        scenario=SequenceScenario(rounds_between=1),
    )


@pytest.fixture
def trained_on() -> Iterator[list[tuple[str, set[int]]]]:
    """Every local training's samples, with a marker entry when a request is served."""
    calls: list[tuple[str, set[int]]] = []
    original_unlearn = Experiment.unlearn

    def train(model: Any, state: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(("train", set(data.indices.tolist())))
        return local_train(model, state, data, *args, **kwargs)

    def unlearn(self: Experiment, original: Any, request: ForgetRequest, *a: Any, **k: Any) -> Any:
        calls.append(("request", set(request.clients)))
        return original_unlearn(self, original, request, *a, **k)

    with (
        mock.patch.object(backend_module, "local_train", train),
        mock.patch.object(Experiment, "unlearn", unlearn),
    ):
        yield calls


def _runner(config: Any) -> SequenceRunner:
    methods = {m: create_unlearner(m) for m in config.unlearn.methods}
    return SequenceRunner(config, methods, None, Silent())


def test_a_forgotten_client_never_trains_again_in_a_methods_chain(
    trained_on: list[tuple[str, set[int]]],
) -> None:
    config = _config()
    runner = _runner(config)
    reference = runner.chain(0, REFERENCE, None)
    exp = runner.experiment(0)
    owned = {c: set(exp.federation.client(c).train.indices.tolist()) for c in TARGETS}
    for method in ("ft", "not"):
        trained_on.clear()
        chain = runner.chain(0, method, reference)
        assert [p.request for p in chain.points] == [0, 1, 2]
        gone: set[int] = set()
        trainings_after = {c: 0 for c in TARGETS}
        for kind, items in trained_on:
            if kind == "request":
                gone |= items
                continue
            for client in gone:
                assert not items & owned[client], f"{method}: client {client} trained again"
                trainings_after[client] += 1
        # the test can fail: after each request there was training (recovery, rounds between)
        assert all(count > 0 for count in trainings_after.values())
        # recall is read on data no later round saw: the earlier requests' clients
        last = chain.points[-1]
        assert [r.request for r in last.earlier] == [0, 1]
        assert all(0 <= r.forget_acc <= 100 and 0 <= r.mia <= 100 for r in last.earlier)


def test_each_requests_retrain_never_saw_any_client_gone_so_far(
    trained_on: list[tuple[str, set[int]]],
) -> None:
    config = _config()
    runner = _runner(config)
    exp = runner.experiment(0)
    runner.trained(0)  # pre-training, on every client, is not a request's Retrain
    trained_on.clear()
    chain = runner.chain(0, REFERENCE, None)
    owned = {c: set(exp.federation.client(c).train.indices.tolist()) for c in TARGETS}
    requests = [items for kind, items in trained_on if kind == "request"]
    assert requests == [{0}, {0, 2}, {0, 2, 3}]  # the union of the requests so far
    segments: list[list[set[int]]] = []
    for kind, items in trained_on:
        if kind == "request":
            segments.append([])
        else:
            segments[-1].append(items)
    for k, segment in enumerate(segments):
        assert segment, "each Retrain trains"
        for client in TARGETS[: k + 1]:
            assert all(not items & owned[client] for items in segment)
    assert len(chain.points) == 3
    # request k's metrics are on its own split: c_k's data forgotten, the clients left retained
    split = exp.without(TARGETS[:1]).split(ForgetRequest(clients=(TARGETS[1],)))
    assert len(split.forget) == len(owned[TARGETS[1]])
    assert 0 not in split.retained.ids and 2 not in split.retained.ids


def test_a_method_that_needs_history_serves_the_first_request_only(tmp_path: Path) -> None:
    config = replace(
        _config(),
        unlearn=replace(_config().unlearn, methods=("retrain", "ft", "negsub")),
        seeds=(0, 1),
    )
    run = SequenceRun(config, tmp_path / "run", progress=Silent())
    summaries = run.execute()
    chains = {(c.method, c.seed): c for c in run.chains}
    assert len(chains["negsub", 0].points) == 1 and len(chains["ft", 0].points) == 3
    assert [r.method for r in summaries[1]] == ["retrain", "ft"]
    report = (tmp_path / "run" / "results.md").read_text()
    assert "serves the first request only" in report
    assert "## Request 3: client 3" in report and "Does forgetting persist?" in report
    assert (tmp_path / "run" / "sequence.png").stat().st_size > 0
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    assert data["first_request_only"] == {"negsub": mock.ANY}
    assert len(data["summary"]) == 3
    assert Chain.from_dict(data["chains"][0]) == run.chains[0]
    frame = load(tmp_path / "run")  # one row per method, seed and request, gaps per request
    assert sorted(set(frame["request"])) == [1, 2, 3] and len(frame) == 2 * (3 + 3 + 1)
    ft = frame[(frame["method"] == "ft") & (frame["request"] == 3)]
    row = next(r for r in summaries[2] if r.method == "ft")
    assert row.avg_gap is not None and ft["avg_gap"].mean() == pytest.approx(row.avg_gap.mean)


def _cli(out: Path, *extra: str) -> list[str]:
    return [
        "bench",
        "-q",
        "--scenario",
        "sequence",
        "--methods",
        "retrain,ft,not",
        "--seeds",
        "0",
        *set_args(
            "data.num_clients=4",
            "unlearn.forget_clients=[0, 2]",
            "model.options.channels=[4, 8]",
            "train.rounds=2",
            "train.batch_size=64",
            "unlearn.recovery_rounds=1",
            "scenario.rounds_between=1",
            "eval.mia_repeats=2",
            "eval.mia_null_permutations=0",
            "eval.retrain_floor=false",
            "cache_dir=",
        ),
        "--out",
        str(out),
        *extra,
    ]


def _chains(out: Path) -> list[dict[str, Any]]:
    """The chains of a run, without wall-clock times and cache flags."""
    chains: list[dict[str, Any]] = json.loads((out / "results.json").read_text())["chains"]
    for chain in chains:
        for point in chain["points"]:
            point["record"].pop("seconds")
            point["record"].pop("cached")
    return chains


def test_two_jobs_give_the_chains_of_one_process_bit_for_bit(tmp_path: Path) -> None:
    cache = f"cache_dir={tmp_path / 'cache'}"
    try:
        assert main([*_cli(tmp_path / "one", "--threads", "1"), "--set", cache]) == 0
        assert main([*_cli(tmp_path / "two", "--threads", "2", "--jobs", "2"), "--set", cache]) == 0
    finally:
        torch.set_num_threads(1)
    assert _chains(tmp_path / "one") == _chains(tmp_path / "two")


def test_the_cli_runs_a_sequence_and_resumes_it(tmp_path: Path, capsys: Any) -> None:
    args = _cli(tmp_path / "run")
    try:
        assert main(args) == 0
        first = json.loads((tmp_path / "run" / "results.json").read_text())
        assert [c["method"] for c in first["chains"]] == ["retrain", "ft", "not"]
        assert "request 2: average gap to Retrain" in capsys.readouterr().out
        with mock.patch.object(SequenceRunner, "chain", side_effect=AssertionError("recomputed")):
            assert main(args) == 0  # every chain is done: nothing runs again
    finally:
        torch.set_num_threads(1)
    again = json.loads((tmp_path / "run" / "results.json").read_text())
    assert again["chains"] == first["chains"]


def test_a_sequence_refuses_a_trajectory_and_single_request_tools(tmp_path: Path) -> None:
    config = replace(_config(), eval=replace(_config().eval, curve_every=1))
    with pytest.raises(ConfigError, match="eval.curve_every = 0"):
        check_sequence(config)
    with pytest.raises(ConfigError, match="fednot bench --scenario sequence"):
        Run(_config(), tmp_path / "run", progress=Silent())
    with pytest.raises(ConfigError, match="rounds_between must be >= 0"):
        SequenceScenario(rounds_between=-1)
