"""An existing Flower app that honours deletion requests with fednot's NoT.

Everything here is the app's own: a small model (`Net`), its clients' data (synthetic, drawn
from each node's ``partition-id``), a ClientApp with plain PyTorch training, and a ServerApp
with Flower's FedAvg. fednot adds four lines to the server, marked ``# fednot``: two imports,
wrapping the strategy, and `UnlearningStrategy.unlearn`. NoT's recovery rounds are ordinary
``train`` messages to everyone else.

To learn who asks to be forgotten, this app has a request channel of its own, which fednot does
not provide: the ClientApp's ``query.forget`` handler (`forget`, 11 lines) and the ServerApp's
`deletion_requests` (6 lines) and its call (2 lines). An app that already knows the node ids
to forget needs none of it. A client asks by its node config (``forget=1``) or, in simulation,
by its partition id in the run config's ``forget-partitions``.

Run it with ``flwr run`` and at least 3 SuperNodes (README.md in this folder): FedAvg waits for
2 nodes, and forgetting one of 2 would leave 1, which `UnlearningStrategy` refuses.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from torch import nn

from fednot.integrations.flower import UnlearningStrategy  # fednot
from fednot.unlearning import NoT  # fednot

FEATURES, CLASSES, SAMPLES = 16, 4, 96


class Net(nn.Module):
    """The app's model: a two-layer perceptron."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Linear(32, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x``."""
        out: torch.Tensor = self.body(x)
        return out


def client_data(partition: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The app's data of one client: noisy class prototypes, drawn from its partition id."""
    prototypes = torch.randn(CLASSES, FEATURES, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(100 + partition)
    labels = torch.randint(0, CLASSES, (SAMPLES,), generator=generator)
    x = prototypes[labels] + 0.8 * torch.randn(SAMPLES, FEATURES, generator=generator)
    return x, labels


def _reply(msg: Message, model: nn.Module | None, **metrics: float) -> Message:
    content = RecordDict({"metrics": MetricRecord(dict(metrics))})
    if model is not None:
        content["arrays"] = ArrayRecord(model.state_dict())
    return Message(content, reply_to=msg)


client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    """One epoch of SGD on the client's data, from the global model."""
    model = Net()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = client_data(int(context.node_config["partition-id"]))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    for batch in order.split(16):
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return _reply(msg, model, **{"num-examples": len(y), "train-loss": float(loss.detach())})


@client_app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Accuracy of the global model on the client's data."""
    model = Net()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = client_data(int(context.node_config["partition-id"]))
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    return _reply(msg, None, **{"num-examples": len(y), "accuracy": accuracy})


@client_app.query("forget")
def forget(msg: Message, context: Context) -> Message:
    """Whether this client's owner asked to be forgotten (the app's own channel).

    The node config's ``forget=1``, or, for simulations, its partition id listed in the run
    config's ``forget-partitions`` (default ``"1"``).
    """
    listed = str(context.run_config.get("forget-partitions", "1")).split(",")
    partition = str(context.node_config["partition-id"])
    wants = int(context.node_config.get("forget", 0)) or int(partition in listed)
    return Message(RecordDict({"config": ConfigRecord({"forget": wants})}), reply_to=msg)


def deletion_requests(grid: Grid) -> list[int]:
    """The nodes whose owners asked to be forgotten."""
    ask = [Message(RecordDict(), node, "query.forget") for node in grid.get_node_ids()]
    replies = grid.send_and_receive(ask, timeout=60)
    asked = [r for r in replies if not r.has_error() and r.content["config"]["forget"]]
    return sorted(r.metadata.src_node_id for r in asked)


def serve(grid: Grid, rounds: int = 5, recovery: int = 3, out: str = "") -> dict[str, object]:
    """Train with FedAvg, then honour the deletion requests with NoT; the summary."""
    initial = ArrayRecord(Net().state_dict())
    strategy = UnlearningStrategy(FedAvg(), method=NoT(), model=Net())  # fednot
    trained = strategy.start(grid, initial, num_rounds=rounds)
    summary: dict[str, object] = {"trained": _metrics(trained.train_metrics_clientapp)}
    forget = deletion_requests(grid)
    if forget:
        unlearned = strategy.unlearn(grid, trained.arrays, forget=forget, rounds=recovery)  # fednot
        assert unlearned.recovery is not None
        summary.update(
            forgotten=unlearned.forgotten,
            notes=unlearned.notes,
            recovery=_metrics(unlearned.recovery.train_metrics_clientapp),
            bytes_sent=unlearned.bytes_sent,
            bytes_received=unlearned.bytes_received,
            seconds=unlearned.seconds,
        )
    if out:
        Path(out).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _metrics(by_round: dict[int, MetricRecord]) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in m.items()} for _, m in sorted(by_round.items())]  # type: ignore[arg-type]


def make_server_app(rounds: int = 5, recovery: int = 3, out: str = "") -> ServerApp:
    """The ServerApp (``out``: where to write the summary as JSON).

    The run config's ``num-server-rounds``, ``recovery-rounds`` and ``summary-file`` override
    the arguments.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        config = context.run_config
        summary = serve(
            grid,
            int(config.get("num-server-rounds", rounds)),
            int(config.get("recovery-rounds", recovery)),
            str(config.get("summary-file", out)),
        )
        print(json.dumps({"summary": summary}, default=str))

    return app


server_app = make_server_app()
