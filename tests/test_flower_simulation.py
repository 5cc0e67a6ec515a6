"""Every federated method through Flower's simulation runtime (``run_simulation``, Ray).

One simulation serves a request with each method in turn (a ServerApp whose main calls
`run_fednot` once per method, on the same virtual SuperNodes), so Ray starts once: about 20 s
for all of them. Each must give the in-process engine's model bit for bit. The methods cover
both kinds of node work: a step on the server with train messages (NoT, FT, NegSub, ...) and a
step run whole on the target's node with its history (PGD, FCU).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip(
    "flwr.simulation",
    reason="flwr[simulation] is not installed: pip install -c constraints.txt -e '.[flower]'",
)

from flwr.app import Context  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402

from fednot.integrations.flower.result import FlowerResult  # noqa: E402
from fednot.integrations.flower.server_app import run_fednot  # noqa: E402
from fednot.integrations.flower.settings import parse_settings  # noqa: E402
from fednot.integrations.flower.testing.checks import (  # noqa: E402
    app_defaults,
    engine_reference,
    quiet_environment,
    same_state,
    simulate,
)
from fednot.testing import TINY_OPTIONS, every_method_config, tiny_config  # noqa: E402
from fednot.types import ForgetRequest  # noqa: E402
from fednot.unlearning.registry import unlearner_class, unlearner_names  # noqa: E402

pytestmark = pytest.mark.flower


def test_the_cases_are_every_method_a_client_can_request() -> None:
    assert set(TINY_OPTIONS) == {
        n for n in unlearner_names() if "client" in unlearner_class(n).scenarios
    }


def test_every_method_under_run_simulation_equals_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in quiet_environment(tmp_path / "flwr-home").items():
        monkeypatch.setenv(key, value)
    config = every_method_config(tiny_config())
    defaults = app_defaults(config, **{"forget-requests": "1:client"})
    results: dict[str, FlowerResult] = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        for method in TINY_OPTIONS:
            own = {**defaults, "method": method, "out": str(tmp_path / method)}
            results[method] = run_fednot(grid, parse_settings(context.run_config, own))

    simulate(defaults, config.data.num_clients, server_app)

    assert list(results) == list(TINY_OPTIONS)  # every method was served, none raised
    negation = results["not"].requests[0]  # NoT's own step ran on the server
    assert negation.outcome.notes["negated_layers"] == ["fc1"]
    assert negation.test_acc.after_step < negation.test_acc.before
    for method, result in results.items():
        exp, trained, outcome = engine_reference(config, ForgetRequest(clients=(1,)), method)
        assert same_state(result.state, outcome.state), method
        assert not result.refused, method
        served = json.loads((tmp_path / method / "result.json").read_text())["requests"]
        assert len(served) == 1 and served[0]["request"]["clients"] == [1], method
        metrics = exp.evaluate(outcome.state, ForgetRequest(clients=(1,)))
        assert served[0]["test_acc"]["after"] == pytest.approx(metrics.test_acc), method
        assert served[0]["forget_acc"]["after"] == pytest.approx(metrics.forget_acc), method
        assert [r.clients for r in result.pretrain.rounds] == [
            r.clients for r in trained.log.rounds
        ], method
        assert [r.clients for r in result.requests[0].outcome.log.rounds] == [
            r.clients for r in outcome.log.rounds
        ], method
        assert (tmp_path / method / "final.pt").exists(), method
