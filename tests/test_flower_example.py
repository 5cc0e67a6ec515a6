"""`UnlearningStrategy` and the example app that uses it (examples/flower_app/not_app.py).

The example is an ordinary Flower app with its own model and data; it imports nothing from
fednot's data or model code. On an in-process grid (seconds) and under Flower's simulation.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "flwr.simulation", reason="flwr is not installed: pip install -c constraints.txt -e '.[flower]'"
)

from flwr.app import ArrayRecord  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402

from fednot.errors import ConfigError  # noqa: E402
from fednot.integrations.flower import UnlearningStrategy  # noqa: E402
from fednot.integrations.flower.testing.checks import quiet_environment, same_state  # noqa: E402
from fednot.integrations.flower.testing.inprocess import InProcessGrid  # noqa: E402
from fednot.unlearning import FT, PGD, NoT, Retrain  # noqa: E402

pytestmark = pytest.mark.flower

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flower_app"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The example module, imported from its folder."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.delitem(sys.modules, "not_app", raising=False)
    import not_app

    return not_app


def _grid(app: Any, forget: str = "1") -> InProcessGrid:
    nodes = [{"partition-id": k, "num-partitions": 3} for k in range(3)]
    return InProcessGrid(app.client_app, nodes, {"forget-partitions": forget})


def test_the_example_imports_no_fednot_data_or_model_code() -> None:
    source = (EXAMPLE / "not_app.py").read_text()
    imports = [
        line for line in source.splitlines() if line.startswith(("from fednot", "import fednot"))
    ]
    assert imports == [
        "from fednot.integrations.flower import UnlearningStrategy  # fednot",
        "from fednot.unlearning import NoT  # fednot",
    ]


def test_the_example_forgets_a_node_with_not(app: Any) -> None:
    grid = _grid(app)
    summary = app.serve(grid, rounds=3, recovery=2)

    forgotten = summary["forgotten"]
    assert forgotten == [grid_node(grid, partition=1)]
    assert summary["notes"]["negated_parameters"] == ["body.0.weight"]  # the first layer
    assert len(summary["recovery"]) == 2
    asked = max(
        i for i, m in enumerate(grid.delivered) if m.metadata.message_type == "query.forget"
    )
    after = [m for m in grid.delivered[asked + 1 :] if m.metadata.dst_node_id in forgotten]
    assert not after  # from the request on, the forgotten node gets no message
    per_message = summary["bytes_sent"]["train"] / (2 * 2)  # 2 rounds, 2 remaining nodes
    assert per_message > sum(p.numel() * 4 for p in app.Net().parameters())


def grid_node(grid: InProcessGrid, partition: int) -> int:
    return next(n for n, c in grid.contexts.items() if c.node_config["partition-id"] == partition)


def _trained(app: Any) -> tuple[InProcessGrid, ArrayRecord, ArrayRecord]:
    grid = _grid(app, forget="")
    initial = ArrayRecord(app.Net().state_dict())
    strategy = UnlearningStrategy(FedAvg(), method=FT(), model=app.Net())
    return grid, initial, strategy.start(grid, initial, num_rounds=2).arrays


def test_ft_skips_the_step_and_retrain_restarts_from_the_initial_weights(app: Any) -> None:
    grid, initial, trained = _trained(app)
    node = grid_node(grid, partition=2)
    ft = UnlearningStrategy(FedAvg(), method=FT(), model=app.Net())
    same = ft.unlearn(grid, trained, forget=[node], rounds=0)
    assert same_state(same.arrays.to_torch_state_dict(), trained.to_torch_state_dict())
    retrain = UnlearningStrategy(
        FedAvg(), method=Retrain(), model=app.Net(), initial_arrays=initial
    )
    fresh = retrain.unlearn(grid, trained, forget=[node], rounds=0)
    assert same_state(fresh.arrays.to_torch_state_dict(), initial.to_torch_state_dict())
    assert fresh.forgotten == [node]


def test_bad_requests_are_refused_with_the_fix(app: Any) -> None:
    grid, _, trained = _trained(app)
    with pytest.raises(ConfigError, match="nothing but ordinary training"):
        UnlearningStrategy(FedAvg(), method=PGD(), model=app.Net())
    with pytest.raises(ConfigError, match="pass initial_arrays"):
        UnlearningStrategy(FedAvg(), method=Retrain(), model=app.Net()).unlearn(
            grid, trained, forget=[grid_node(grid, 0)], rounds=1
        )
    with pytest.raises(ConfigError, match="not connected"):
        UnlearningStrategy(FedAvg(), method=NoT(), model=app.Net()).unlearn(
            grid, trained, forget=[12345], rounds=1
        )


def test_the_example_under_flowers_simulation(
    app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flwr.simulation import run_simulation

    for key, value in quiet_environment(tmp_path / "flwr-home").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", f"{EXAMPLE}:{':'.join(sys.path)}")  # for the Ray workers
    out = tmp_path / "summary.json"

    run_simulation(
        server_app=app.make_server_app(rounds=2, recovery=2, out=str(out)),
        client_app=app.client_app,
        num_supernodes=3,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": 2, "logging_level": "ERROR", "log_to_driver": False},
        },
    )

    summary = json.loads(out.read_text())
    assert len(summary["forgotten"]) == 1 and len(summary["recovery"]) == 2
    assert summary["notes"]["negated_parameters"] == ["body.0.weight"]
