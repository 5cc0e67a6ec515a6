"""The federated engine: FedAvg rounds, local training, aggregation, cost meters."""
