"""Content digests that let fednot tell a file it wrote from one that changed since.

`torch.load` checks a file's structure but not its contents: bytes flipped inside a tensor's
data, a number or a string load silently as different values. fednot therefore stores, inside
every cache entry and checkpoint it writes, a SHA-256 digest of the payload's content under the
reserved key `DIGEST_KEY`, and recomputes it after loading.

The digest is computed over the loaded objects, not the file's bytes, so it is independent of
how `torch.save` lays the file out: dict entries in sorted key order, lists and tuples in order,
each tensor by its dtype, shape and the raw bytes of its contiguous CPU copy, and every scalar,
string and ``None`` by a canonical encoding (floats by their exact IEEE-754 bits). Every item is
tagged and length-prefixed, so no two different payloads share an encoding.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from typing import Any, Protocol

import torch

DIGEST_KEY = "fednot_content_sha256"
"""The reserved payload key that holds the digest of the rest of the payload."""

MISMATCH = "its content digest does not match: the file changed after fednot wrote it"
MISSING = "it carries no content digest, although fednot writes one into every such file"


class _Sink(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...


class _Collect:
    """A `_Sink` that keeps the bytes (for sorting dict keys by their encoding)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def update(self, data: bytes | memoryview, /) -> None:
        self.parts.append(bytes(data))


def content_digest(obj: object) -> str:
    """The hex SHA-256 of ``obj``'s canonical encoding (see the module docstring).

    Raises:
        TypeError: ``obj`` holds a type fednot never stores (name it in `_encode` to support it).
    """
    sink = hashlib.sha256()
    _encode(obj, sink)
    return sink.hexdigest()


def seal(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``payload`` with its content digest stored under `DIGEST_KEY`."""
    content = {k: v for k, v in payload.items() if k != DIGEST_KEY}
    return {**content, DIGEST_KEY: content_digest(content)}


def problem(payload: Mapping[str, Any]) -> str | None:
    """Why ``payload``'s content cannot be trusted (`MISSING`, `MISMATCH`); ``None`` if it can."""
    stored = payload.get(DIGEST_KEY)
    if stored is None:
        return MISSING
    content = {k: v for k, v in payload.items() if k != DIGEST_KEY}
    try:
        return None if stored == content_digest(content) else MISMATCH
    except TypeError as e:  # a damaged file can decode to an unexpected type
        return f"{MISMATCH} ({e})"


def unsealed(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` without its digest."""
    return {k: v for k, v in payload.items() if k != DIGEST_KEY}


def _item(sink: _Sink, tag: bytes, data: bytes | memoryview) -> None:
    sink.update(tag + struct.pack(">Q", len(data)))
    sink.update(data)


def _encode(obj: object, sink: _Sink) -> None:
    if obj is None:
        _item(sink, b"N", b"")
    elif isinstance(obj, bool):  # before int: bool is an int subclass
        _item(sink, b"B", b"\x01" if obj else b"\x00")
    elif isinstance(obj, int):
        _item(sink, b"I", str(obj).encode())
    elif isinstance(obj, float):
        _item(sink, b"F", struct.pack(">d", obj))
    elif isinstance(obj, str):
        _item(sink, b"S", obj.encode("utf-8", "surrogatepass"))
    elif isinstance(obj, bytes):
        _item(sink, b"Y", obj)
    elif isinstance(obj, torch.Tensor):
        _tensor(obj, sink)
    elif isinstance(obj, Mapping):
        _mapping(obj, sink)
    elif isinstance(obj, list | tuple):  # pickling keeps which; both are sequences here
        _item(sink, b"L", struct.pack(">Q", len(obj)))
        for value in obj:
            _encode(value, sink)
    else:
        raise TypeError(
            f"Cannot compute a content digest of a {type(obj).__name__}: expected tensors, "
            "dicts, lists, tuples, str, bytes, int, float, bool or None. Convert it to one of "
            "these before caching or checkpointing it."
        )


def _mapping(obj: Mapping[Any, Any], sink: _Sink) -> None:
    entries = []
    for key, value in obj.items():
        collect = _Collect()
        _encode(key, collect)
        entries.append((b"".join(collect.parts), value))
    entries.sort(key=lambda entry: entry[0])
    _item(sink, b"D", struct.pack(">Q", len(entries)))
    for key_bytes, value in entries:
        sink.update(key_bytes)
        _encode(value, sink)


def _tensor(tensor: torch.Tensor, sink: _Sink) -> None:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    header = f"{flat.dtype}|{tuple(tensor.shape)}".encode()
    _item(sink, b"T", header)
    _item(sink, b"t", flat.view(torch.uint8).numpy().data)
