"""Check, before any work starts, that the folders and files a command will write can be written.

A run that trains for an hour and then cannot save its model has lost the hour; these checks
create nothing. They find the nearest existing ancestor of the path and create (then remove) a
probe file there, which catches read-only file systems, missing permissions and files standing
where folders are expected.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fednot.errors import ConfigError


def check_writable_dir(path: Path, what: str, option: str) -> None:
    """``path`` is a folder fednot may create or write into.

    Args:
        path: the folder.
        what: what the folder holds, for the message ("the run folder").
        option: the option that sets it, for the message ("--out").
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{what.capitalize()} {path} is a file, not a folder; pass a folder path to {option}."
        )
    _probe(path, what, option)


def check_writable_file(path: Path, what: str, option: str) -> None:
    """``path`` is a file fednot may create or replace."""
    if path.is_dir():
        raise ConfigError(
            f"{what.capitalize()} {path} is a folder; pass a file path (e.g. model.pt) to {option}."
        )
    _probe(path.parent, what, option)


def _probe(folder: Path, what: str, option: str) -> None:
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"Cannot write {what} under {folder}: {existing} is a file, not a folder. Choose "
            f"another path with {option}."
        )
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".fednot-probe-")
    except OSError as e:
        raise ConfigError(
            f"Cannot write {what} under {folder}: {existing} is not writable ({e.strerror}). "
            f"Choose a writable path with {option}."
        ) from e
    os.close(fd)
    os.unlink(probe)
