"""pytorchexample: Flower's PyTorch quickstart app, with fednot's deletion ledger."""
