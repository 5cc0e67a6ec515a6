"""A tiny package outside fednot: its own model and its own data set (fednot's examples/custom)."""
