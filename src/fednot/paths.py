"""Check, before any work starts, that the folders and files a command will write can be written.

A run that trains for an hour and then cannot save its model has lost the hour; these checks
create nothing. They find the nearest existing ancestor of the path and create (then remove) a
probe file there, which catches read-only file systems, missing permissions and files standing
where folders are expected.
"""

from __future__ import annotations

import os
import re
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
        kind = "a file" if path.is_file() else "not a regular file or folder"
        raise ConfigError(
            f"{what.capitalize()} {path} is {kind}, not a folder; pass a folder path to {option}."
        )
    _probe(path, what, option)


def check_writable_file(
    path: Path, what: str, option: str, *, inputs: tuple[Path, ...] = ()
) -> None:
    """``path`` is a file fednot may create or replace: new, or a regular file, not an input.

    A device, a FIFO or a socket is never replaced (``--out /dev/null`` must not replace the
    system's), and neither is one of the command's ``inputs`` (e.g. the source checkpoint).
    """
    if path.is_dir():
        raise ConfigError(
            f"{what.capitalize()} {path} is a folder; pass a file path (e.g. model.pt) to {option}."
        )
    if path.exists() and not path.is_file():
        raise ConfigError(
            f"{what.capitalize()} {path} exists and is not a regular file (a device, FIFO or "
            f"socket); fednot never replaces one. Pass a new file path (e.g. model.pt) to {option}."
        )
    for source in inputs:
        if path.resolve() == source.resolve():
            raise ConfigError(
                f"{option} {path} is the command's input {source}; writing {what} there would "
                f"replace it. Pass another path to {option}."
            )
    _probe(path.parent, what, option)


def check_input_file(path: Path, what: str) -> None:
    """``path`` is a regular file fednot may read: not missing, a folder, a FIFO or a device.

    Reading a FIFO waits for a writer that may never come, and a device such as /dev/zero never
    ends: both would hang the command instead of failing it.
    """
    if not path.exists():
        raise ConfigError(f"{what.capitalize()} {path} does not exist.")
    if path.is_dir():
        raise ConfigError(f"{what.capitalize()} {path} is a folder; pass a file.")
    if not path.is_file():
        raise ConfigError(
            f"{what.capitalize()} {path} is not a regular file (a device, FIFO or socket, which "
            "could block or never end); pass a file."
        )


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


def name_part(text: str) -> str:
    """``text`` made safe as part of a file or folder name.

    Every run of characters other than letters, digits, ``_`` and ``-`` becomes one ``-``, so
    that a data set's import string (``pkg.mod:load``, or ``../x``) can never name another folder.
    """
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)
