"""pytorchexample: the quickstart's ServerApp, honouring deletion requests with a ledger.

As Flower's quickstart-pytorch ``server_app.py`` (FedAvg's ``start`` on the grid, a centralised
evaluation, the final model saved); fednot's lines are marked ``# fednot:``. They wrap the
strategy in `UnlearningStrategy` with a `DeletionLedger` read at start, continue from the last
run's model, and serve this run's requests (the run config's ``forget``: identities, here
partition ids) with NoT after training. A client forgotten in any earlier run never trains
again: the ledger on disk lists it, and the strategy leaves its node out.
"""

from pathlib import Path  # fednot

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from fednot.integrations.flower import DeletionLedger, UnlearningStrategy  # fednot
from fednot.unlearning import NoT  # fednot
from pytorchexample.task import Net, load_centralized_dataset, test

# Create ServerApp
app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Main entry point for the ServerApp."""
    fraction_evaluate: float = context.run_config["fraction-evaluate"]
    num_rounds: int = context.run_config["num-server-rounds"]
    lr: float = context.run_config["learning-rate"]

    global_model = Net()
    arrays = ArrayRecord(global_model.state_dict())
    model_file = Path(str(context.run_config["model-file"]))  # fednot: "final_model.pt"
    if model_file.exists():  # fednot: a restarted server goes on from its last model
        arrays = ArrayRecord(torch.load(model_file, weights_only=True))  # fednot

    strategy = FedAvg(fraction_evaluate=fraction_evaluate)
    ledger = DeletionLedger(str(context.run_config["ledger"]))  # fednot: read at start
    strategy = UnlearningStrategy(strategy, method=NoT(), model=Net(), ledger=ledger)  # fednot

    result = strategy.start(
        grid=grid,
        initial_arrays=arrays,
        train_config=ConfigRecord({"lr": lr}),
        num_rounds=num_rounds,
        evaluate_fn=global_evaluate,
    )
    final = result.arrays  # fednot

    forget = [i for i in str(context.run_config["forget"]).split(",") if i]  # fednot
    if forget:  # fednot: this run's deletion requests, after training
        nodes = strategy.nodes_of(grid, forget)  # fednot
        rounds = int(context.run_config["recovery-rounds"])  # fednot
        train_config = ConfigRecord({"lr": lr})  # fednot
        unlearned = strategy.unlearn(  # fednot
            grid, final, nodes, rounds=rounds, train_config=train_config  # fednot
        )  # fednot
        final = unlearned.arrays  # fednot

    print("\nSaving final model to disk...")
    state_dict = final.to_torch_state_dict()  # fednot: the unlearned model, if any
    torch.save(state_dict, model_file)  # fednot: the file the next run starts from


def global_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
    """Evaluate the model on the server's test set."""
    model = Net()
    model.load_state_dict(arrays.to_torch_state_dict())
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    test_loss, test_acc = test(model, load_centralized_dataset(), device)
    return MetricRecord({"accuracy": test_acc, "loss": test_loss})
