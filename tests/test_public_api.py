from __future__ import annotations

import importlib

import fednot


def test_every_exported_name_exists() -> None:
    for name in fednot.__all__:
        assert hasattr(fednot, name), name
    unlearning = importlib.import_module("fednot.unlearning")
    for name in unlearning.__all__:
        assert hasattr(unlearning, name), name
