"""Test tooling for fednot on Flower, apart from the adapter.

`inprocess.InProcessGrid` runs ClientApps in this process; `checks` compares a Flower run with the
engine.
"""
