"""Metrics as pure functions: the loss MIA and the gaps to Retrain."""
