"""A content-addressed cache of trained models, with resumable partial checkpoints.

Pre-training and Retrain dominate a run's cost. Their results are stored under a hash of
everything that determines them (data and partition fingerprint, model, FedAvg recipe, seed,
forget request, fednot version), so a second run, or another method on the same request, reuses
them. While a model trains, its latest round is checkpointed under the same key with a
``.partial`` suffix; an interrupted run resumes from it bit-identically, because every round's
randomness comes from streams keyed by the round (`fednot.seeding`).

Writes are atomic (a temporary file, then `os.replace`), so an interruption never leaves a
half-written entry; the file gets the mode a plain ``open`` would give it under the user's umask
(0644 under the usual 022), not the temporary file's private 0600, so that collaborators on a
shared server can read results, configurations and models. Every entry carries a digest of its
content (`fednot.store.integrity`), checked when it is loaded: an entry that cannot be read, or
whose content changed after fednot wrote it, is reported with a `FedNotWarning`, removed, and
recomputed (a damaged partial checkpoint restarts its phase from the first round).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fednot.errors import ConfigError, DamagedFileError, FedNotWarning
from fednot.store.integrity import problem, seal, unsealed
from fednot.version import __version__

CACHE_FORMAT = 2
"""Part of every cache key: 2 added the content digest, so older entries are never looked up."""

MAX_REASON = 200
"""The longest exception message quoted in a damaged-file report (torch's can be pages long)."""


def cache_key(kind: str, parts: dict[str, Any]) -> str:
    """A stable key for ``parts`` (JSON-serialisable), prefixed by ``kind``."""
    text = json.dumps(
        {"parts": parts, "format": CACHE_FORMAT, "version": __version__}, sort_keys=True
    )
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def atomic_save(obj: object, path: Path) -> None:
    """`torch.save` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        try:
            torch.save(obj, tmp)
        except RuntimeError as e:  # torch reports a failed write (a full disk) as RuntimeError
            raise OSError(errno.EIO, f"writing failed ({describe_exception(e)})", str(path)) from e
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(text: str, path: Path, *, durable: bool = False) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder.

    ``durable``: flush the file to the disk before the rename and the folder after it
    (`os.fsync`), so that once this returns the new content survives a power cut, not only a
    crash of the process (the deletion ledger needs this; a result file does not).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
        if durable:
            _sync_folder(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _sync_folder(folder: Path) -> None:
    """`os.fsync` a folder, so that a rename in it is on disk (a no-op where not supported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_mode() -> int:
    """The mode ``open`` gives a new file: 0o666 less the process's umask (0o644 under 022).

    `tempfile.mkstemp` creates files 0o600 whatever the umask; the atomic writers set this mode
    before the rename. The umask is read from /proc where Linux has it: setting it to read it
    back (the only portable way) would, for an instant, change it for every thread.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def read_json_state(path: Path) -> dict[str, Any] | None:
    """The JSON state a resumable command left in ``path`` (``None``: there is none).

    Raises:
        ConfigError: the file exists but cannot be read or parsed.
    """
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} exists but cannot be read ({e}); choose another --out.") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold what fednot writes there; choose another --out.")
    return data


def save_verified(payload: Mapping[str, Any], path: Path) -> None:
    """`atomic_save` of ``payload`` with its content digest (read it with `load_verified`)."""
    atomic_save(seal(payload), path)


def read_payload(path: Path) -> dict[str, Any]:
    """The dict that `torch.load` reads from ``path``, its digest not yet checked.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DamagedFileError: the file cannot be loaded, or holds something other than a dict.
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to load means the file is unusable
        raise DamagedFileError(path, f"is unreadable ({describe_exception(e)})") from e
    if not isinstance(data, dict):
        raise DamagedFileError(
            path, f"is damaged (it holds a {type(data).__name__}, fednot writes a dict)"
        )
    return data


def load_verified(path: Path) -> dict[str, Any]:
    """Read a file written by `save_verified`; return its payload once its digest matches.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DamagedFileError: the file is unreadable, carries no digest, or its content changed.
    """
    payload = read_payload(path)
    reason = problem(payload)
    if reason is not None:
        raise DamagedFileError(path, f"is damaged ({reason})")
    return unsealed(payload)


def describe_exception(error: BaseException) -> str:
    """``"Type: first line of the message"`` (the type alone if the message is empty)."""
    lines = str(error).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class ModelCache:
    """Cache entries as ``<root>/<key>.pt``; a ``None`` root disables caching."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def _path(self, key: str, partial: bool = False) -> Path:
        assert self.root is not None
        return self.root / f"{key}{'.partial' if partial else ''}.pt"

    def load(self, key: str, *, partial: bool = False) -> dict[str, Any] | None:
        """The entry for ``key``, or ``None`` if there is none or it is damaged.

        A damaged or unreadable entry is reported with a `FedNotWarning` and removed, so that
        the caller recomputes it.
        """
        if self.root is None:
            return None
        path = self._path(key, partial)
        try:
            return load_verified(path)
        except FileNotFoundError:
            return None
        except DamagedFileError as e:
            action = "restarting its phase from the first round" if partial else "recomputing it"
            what = "Partial checkpoint" if partial else "Cache entry"
            warnings.warn(f"{what} {e}; removed it, {action}.", FedNotWarning, stacklevel=2)
            _discard(path)
            return None

    def save(self, key: str, payload: dict[str, Any], *, partial: bool = False) -> None:
        """Store ``payload`` under ``key``; a final save removes the partial checkpoint."""
        if self.root is None:
            return
        save_verified(payload, self._path(key, partial))
        if not partial:
            self._path(key, partial=True).unlink(missing_ok=True)


def _discard(path: Path) -> None:
    """Remove a damaged entry; if that fails, the recomputed entry will replace it."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
