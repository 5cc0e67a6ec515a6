"""Shared fixtures. One torch thread: on 2-core CI machines more threads only add contention."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from fednot.unlearning.registry import registry_snapshot, restore_registry

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _restore_registry() -> Iterator[None]:
    """Tests may register methods; each test starts from the built-in registry."""
    snapshot = registry_snapshot()
    yield
    restore_registry(snapshot)


@pytest.fixture(autouse=True)
def _isolated_cwd(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run every test in a scratch folder, so default run and cache folders never pile up."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    monkeypatch.setenv("CI", "true")
