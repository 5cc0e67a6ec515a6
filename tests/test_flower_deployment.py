"""A real Flower deployment: a SuperLink and 3 SuperNodes on 127.0.0.1 serve a request.

Every message starts a fresh ``flwr-clientapp`` process on its SuperNode, and a SuperNode sleeps
3 s whenever it finds no message, so each round trip costs seconds (docs/engine.md).

- In the normal suite, PGD alone (about a minute): its request uses every kind of message a
  deployment carries: node identification, the request query, a step run whole on the target's
  node (``train.unlearn``, carrying the training history the server kept), the recovery's train
  messages and the evaluations.
- Marked ``long`` (``make test-long``, run by CI after ``make test``): every method a client can
  request, each in its own Flower run on one deployment (``fednot flower up --single-run`` with
  every ``--method``), each giving the in-process engine's model bit for bit (about ten
  minutes); and two methods unlearning from one pre-training run's checkpoint, ``fednot flower
  up``'s default (about two minutes).

Deselect both with ``-m "not deployment"``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip(
    "flwr", reason="flwr is not installed: pip install -c constraints.txt -e '.[flower]'"
)

from fednot.checkpoint import load_checkpoint  # noqa: E402
from fednot.config import RunConfig, TrainConfig, UnlearnConfig  # noqa: E402
from fednot.configio import to_toml  # noqa: E402
from fednot.integrations.flower.local.deploy import deploy  # noqa: E402
from fednot.integrations.flower.local.processes import processes_with  # noqa: E402
from fednot.integrations.flower.testing.checks import (  # noqa: E402
    engine_reference,
    same_state,
)
from fednot.testing import TINY_OPTIONS, every_method_config, tiny_config  # noqa: E402
from fednot.types import ForgetRequest  # noqa: E402

pytestmark = [pytest.mark.flower, pytest.mark.deployment]

REQUEST = ForgetRequest(clients=(1,))


def _config(methods: tuple[str, ...]) -> RunConfig:
    return tiny_config(
        train=TrainConfig(rounds=1, batch_size=8, lr=0.05),
        unlearn=UnlearnConfig(forget_clients=(1,), recovery_rounds=1, methods=methods),
        threads=1,
    )


def _deploy(
    config: RunConfig,
    methods: tuple[str, ...],
    workdir: Path,
    timeout: float,
    single_run: bool = True,
) -> dict:
    done = deploy(
        to_toml(config),
        config.data.num_clients,
        methods=methods,
        forget={1: "client"},
        workdir=workdir,
        single_run=single_run,
        timeout=timeout,
        extra={"data-source": "tiny"},
    )
    runs = done.runs if single_run else done.runs[1:]  # after the pre-training run
    assert [run.returncode for run in done.runs] == [0] * len(done.runs)
    assert len(runs) == len(methods)
    for method, run in zip(methods, runs, strict=True):
        assert f"FEDNOT_DONE method={method} requests=1 refused=0" in run.output
    assert processes_with(f"FLWR_HOME={workdir / 'flwr-home'}".encode()) == []  # none left
    assert list(done.results) == list(methods)
    return done.results


def _check_against_the_engine(
    config: RunConfig, method: str, result: dict, out: Path, *, pretrained_here: bool = True
) -> None:
    """The deployment's model is the engine's, bit for bit, with the same numbers and rounds.

    ``pretrained_here``: the method's run pre-trained itself, rather than loading the
    checkpoint of a pre-training run.
    """
    exp, trained, outcome = engine_reference(config, REQUEST, method)
    payload, _ = load_checkpoint(out / method / "final.pt")
    assert same_state(payload["state"], outcome.state), method
    assert not result["refused"], method
    served = result["requests"]
    assert len(served) == 1 and served[0]["request"]["clients"] == [1], method
    assert served[0]["excluded"] == [1], method
    metrics = exp.evaluate(outcome.state, REQUEST)
    assert served[0]["test_acc"]["after"] == pytest.approx(metrics.test_acc), method
    assert served[0]["forget_acc"]["after"] == pytest.approx(metrics.forget_acc), method
    if pretrained_here:
        assert [r["clients"] for r in result["pretrain"]["rounds"]] == [
            list(r.clients) for r in trained.log.rounds
        ], method
    else:
        assert result["pretrain"]["stop_reason"] == "loaded from a checkpoint", method
    assert [r["clients"] for r in served[0]["recovery"]["rounds"]] == [
        list(r.clients) for r in outcome.log.rounds
    ], method


def test_local_deployment_serves_a_request_whose_step_runs_on_the_target(tmp_path: Path) -> None:
    config = replace(_config(("pgd",)), options={"pgd": TINY_OPTIONS["pgd"]})

    results = _deploy(config, ("pgd",), tmp_path, timeout=240)

    result = results["pgd"]
    assert result["requests"][0]["notes"]["steps"] > 0  # PGD's step ran on the target: its ascent
    assert result["bytes_sent"]["train"] > 0 and result["bytes_received"]["train"] > 0
    _check_against_the_engine(config, "pgd", result, tmp_path / "out")


@pytest.mark.long
def test_every_method_on_a_local_deployment_equals_the_engine(tmp_path: Path) -> None:
    config = every_method_config(_config(("not",)))
    methods = tuple(TINY_OPTIONS)

    results = _deploy(config, methods, tmp_path, timeout=300)

    for method in methods:
        _check_against_the_engine(config, method, results[method], tmp_path / "out")


@pytest.mark.long
def test_methods_unlearn_from_one_pretraining_run_on_a_local_deployment(tmp_path: Path) -> None:
    methods = ("fcu", "not")  # fednot flower up's default: a checkpoint joins the runs
    config = replace(_config(methods), options={"fcu": TINY_OPTIONS["fcu"]})

    results = _deploy(config, methods, tmp_path, timeout=240, single_run=False)

    assert (tmp_path / "pretrained.pt").exists()
    out = tmp_path / "out"
    for method in methods:
        _check_against_the_engine(config, method, results[method], out, pretrained_here=False)
