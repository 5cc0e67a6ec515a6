"""The deletion ledger: which clients were forgotten, and a receipt of each request.

A ledger is one JSON file the operator names. It is read when the server starts and rewritten
(atomically and durably: a temporary file, `os.fsync`, `os.replace`) after every change, so it
outlives the ServerApp. It holds a format tag and version, the receipts in the order the
requests were served, and the SHA-256 of the receipts' canonical JSON::

    {"format": "fednot-deletion-ledger", "version": 1, "checksum": "sha256:...",
     "receipts": [{"request_id": "...", "status": "done", "kind": "client",
                   "identities": ["3"], ...}]}

A receipt's ``kind`` is the request's: ``"client"`` (the client leaves: its identities are
forgotten), ``"class"`` or ``"instance"`` (some of the client's data is removed, the client
stays and may train again). `DeletionLedger.forgotten` lists the identities of client-wise
receipts only.

A file that exists but is empty, is not JSON, has another format or version, or whose checksum
does not match its receipts (truncated, edited by hand) raises `LedgerError`: it is never read
as an empty ledger, which would let forgotten clients train again. A missing file is a new,
empty ledger unless the caller passes ``create=False`` (a server that has served requests
before and must find its ledger again).

A request is written twice. `DeletionLedger.begin` records it with status ``"started"`` (the
identities, the method, the digest of the model before) before anything changes, so the
forgotten identities are on disk before any recovery message goes out; `DeletionLedger.finish`
completes it (status ``"done"``: the method's step, the recovery rounds and bytes, the digest
of the model after). A crash in between leaves the ``"started"`` receipt: its identities stay
forgotten, and ``fednot ledger show`` marks the request as unfinished, to be served again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from fednot.errors import LedgerError
from fednot.store.cache import atomic_write_text

FORMAT = "fednot-deletion-ledger"
VERSION = 1
STARTED, DONE = "started", "done"
KINDS = ("client", "class", "instance")
_RESTORE = (
    "Refusing to read it as an empty ledger, which would let forgotten clients train again: "
    "restore the file from a backup, or pass another ledger file"
)


@dataclass(frozen=True)
class Receipt:
    """One deletion request, as the ledger keeps it.

    Attributes:
        request_id: a random id (UUID4 hex) of the request.
        time: when the request was recorded (UTC, ISO 8601), before anything changed.
        identities: the requesting clients' stable identities (what the ledger is keyed by);
            forgotten as clients where ``kind`` is ``"client"``.
        node_ids: their Flower node ids at the time (valid in that run only).
        method: the method's registry name; ``settings``: its constructor's settings.
        status: ``"started"`` (recorded, not finished) or ``"done"``.
        step: what the method's own step did (e.g. ``{"negated_parameters": [...]}``).
        recovery_rounds: the rounds run without the forgotten clients.
        bytes_sent / bytes_received: the unlearning's message bytes, by message type.
        digest_before / digest_after: `state_digest` of the model before and after.
        finished: when the request was completed (UTC, ISO 8601; empty while started).
        kind: the request's kind: ``"client"`` (the client leaves), ``"class"`` or
            ``"instance"`` (data is removed, the client stays).
        request: the request as `fednot.types.ForgetRequest.to_dict` writes it (``{}`` where
            the server does not know it, e.g. `UnlearningStrategy`'s node-wise requests).
    """

    request_id: str
    time: str
    identities: tuple[str, ...]
    node_ids: tuple[int, ...]
    method: str
    settings: dict[str, Any] = field(default_factory=dict)
    status: str = STARTED
    step: dict[str, Any] = field(default_factory=dict)
    recovery_rounds: int = 0
    bytes_sent: dict[str, int] = field(default_factory=dict)
    bytes_received: dict[str, int] = field(default_factory=dict)
    digest_before: str = ""
    digest_after: str = ""
    finished: str = ""
    kind: str = "client"
    request: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The receipt as JSON-ready data (tuples as lists)."""
        out = dataclasses.asdict(self)
        out["identities"], out["node_ids"] = list(self.identities), list(self.node_ids)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Receipt:
        """The receipt `to_dict` wrote. Raises `KeyError`, `TypeError` or `ValueError` if not."""
        names = {f.name for f in dataclasses.fields(cls)}
        if set(data) != names:
            raise ValueError(f"expected the keys {sorted(names)}, got {sorted(data)}")
        receipt = cls(**{**data, "identities": tuple(data["identities"])})
        receipt = dataclasses.replace(receipt, node_ids=tuple(int(n) for n in data["node_ids"]))
        if (
            receipt.status not in (STARTED, DONE)
            or receipt.kind not in KINDS
            or not isinstance(receipt.request, dict)
            or not all(isinstance(i, str) for i in receipt.identities)
        ):
            raise ValueError(
                f"receipt {receipt.request_id!r} has a bad status, kind, request or identity"
            )
        return receipt


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """``"sha256:<hex>"`` of a model's arrays, the same for equal models.

    By name in sorted order: each tensor's name, dtype, shape and the bytes of its contiguous
    CPU copy.
    """
    sha = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        sha.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"sha256:{sha.hexdigest()}"


def _checksum(receipts: list[dict[str, Any]]) -> str:
    text = json.dumps(receipts, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class DeletionLedger:
    """The ledger file at ``path``, read at once; see the module docstring.

    Args:
        path: the ledger file.
        create: whether a missing file is a new, empty ledger (written at the first request).
            ``False``: a missing file raises `LedgerError`.

    Raises:
        LedgerError: the file is damaged, or (``create=False``) missing.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self._receipts: list[Receipt] = []
        if self.path.exists():
            self._receipts = read_receipts(self.path)
        elif not create:
            raise LedgerError(
                f"Deletion ledger {self.path} does not exist (create=False). Pass the ledger "
                "file this server wrote before, or create=True to start a new, empty ledger."
            )

    @property
    def receipts(self) -> tuple[Receipt, ...]:
        """Every request, in the order they were served."""
        return tuple(self._receipts)

    @property
    def forgotten(self) -> frozenset[str]:
        """The identities of every client forgotten, by finished and unfinished requests.

        Only client-wise receipts forget their clients: a class- or instance-wise request
        removes data, and its client stays.
        """
        return forgotten_identities(self._receipts)

    def begin(
        self,
        identities: Iterable[str],
        node_ids: Iterable[int],
        method: str,
        *,
        settings: Mapping[str, Any] | None = None,
        digest_before: str = "",
        kind: str = "client",
        request: Mapping[str, Any] | None = None,
    ) -> Receipt:
        """Record a request as started, on disk, before anything changes; return its receipt.

        ``kind``: ``"client"``, ``"class"`` or ``"instance"``; ``request``: the request's
        `fednot.types.ForgetRequest.to_dict` (``{}`` where unknown).
        """
        if kind not in KINDS:
            raise ValueError(f"Expected a request kind in {KINDS}, got {kind!r}.")
        receipt = Receipt(
            request_id=uuid.uuid4().hex,
            time=_now(),
            identities=tuple(sorted(set(identities))),
            node_ids=tuple(sorted(set(node_ids))),
            method=method,
            settings=json.loads(json.dumps(dict(settings or {}), default=str)),
            digest_before=digest_before,
            kind=kind,
            request=json.loads(json.dumps(dict(request or {}), default=str)),
        )
        self._write([*self._receipts, receipt])
        return receipt

    def finish(self, receipt: Receipt, **done: Any) -> Receipt:
        """Complete ``receipt`` as done, write it, and return the new receipt.

        ``done``: `Receipt` fields (step, recovery_rounds, bytes_sent, bytes_received,
        digest_after).
        """
        final = dataclasses.replace(
            receipt, **json.loads(json.dumps(done, default=str)), status=DONE, finished=_now()
        )
        at = next(i for i, r in enumerate(self._receipts) if r.request_id == receipt.request_id)
        self._write([*self._receipts[:at], final, *self._receipts[at + 1 :]])
        return final

    def _write(self, receipts: list[Receipt]) -> None:
        data = [r.to_dict() for r in receipts]
        document = {"format": FORMAT, "version": VERSION, "checksum": _checksum(data)}
        text = json.dumps({**document, "receipts": data}, indent=1, ensure_ascii=True)
        atomic_write_text(text + "\n", self.path, durable=True)
        self._receipts = receipts


def read_receipts(path: Path) -> list[Receipt]:
    """The receipts of the ledger file ``path``, after checking its format and checksum.

    Raises:
        LedgerError: the file cannot be read, is empty, is not a ledger of this version, or
            its checksum does not match its receipts.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LedgerError(f"Deletion ledger {path} cannot be read ({e}). {_RESTORE}.") from e
    if not text.strip():
        raise _damaged(path, "is empty, although fednot never writes an empty ledger")
    try:
        document = json.loads(text)
    except ValueError as e:
        raise _damaged(path, f"is not valid JSON ({e}): it was truncated or edited") from e
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _damaged(path, f"is not a fednot deletion ledger (no format {FORMAT!r})")
    if document.get("version") != VERSION:
        raise LedgerError(
            f"Deletion ledger {path} has format version {document.get('version')!r}; this "
            f"fednot reads version {VERSION}. Use the fednot version that wrote it."
        )
    data = document.get("receipts")
    if not isinstance(data, list) or document.get("checksum") != _checksum(data):
        raise _damaged(path, "does not match its checksum: it was truncated or edited")
    try:
        return [Receipt.from_dict(r) for r in data]
    except (KeyError, TypeError, ValueError) as e:
        raise _damaged(path, f"holds a malformed receipt ({e})") from e


def _damaged(path: Path, what: str) -> LedgerError:
    return LedgerError(f"Deletion ledger {path} {what}. {_RESTORE}.")


def forgotten_identities(receipts: Iterable[Receipt]) -> frozenset[str]:
    """The identities the client-wise receipts among ``receipts`` forgot."""
    return frozenset(i for r in receipts if r.kind == "client" for i in r.identities)


def describe_ledger(receipts: Sequence[Receipt]) -> str:
    """The receipts as readable text (``fednot ledger show``)."""
    forgotten = sorted(forgotten_identities(receipts))
    lines = [f"{len(receipts)} request(s); forgotten: {', '.join(forgotten) or 'none'}"]
    for n, r in enumerate(receipts, 1):
        state = "done" if r.status == DONE else "STARTED, NOT FINISHED (serve it again)"
        settings = ", ".join(f"{k}={v}" for k, v in r.settings.items()) or "defaults"
        step = "; ".join(f"{k}: {_text(v)}" for k, v in r.step.items()) or "no server-side step"
        who = "forgotten:  " if r.kind == "client" else "data of:    "  # a class-wise client stays
        lines += [
            f"Request {n}  {r.request_id}  [{state}]",
            f"  time:        {r.time}" + (f" (finished {r.finished})" if r.finished else ""),
            f"  kind:        {r.kind}" + (f" ({_request_text(r.request)})" if r.request else ""),
            f"  {who} {', '.join(r.identities)}  (node ids then: {_text(r.node_ids)})",
            f"  method:      {r.method} ({settings})",
            f"  step:        {step}",
            f"  recovery:    {r.recovery_rounds} rounds; bytes sent {_text(r.bytes_sent)}, "
            f"received {_text(r.bytes_received)}",
            f"  model:       before {r.digest_before or '-'}",
            f"               after  {r.digest_after or '-'}",
        ]
    return "\n".join(lines) + "\n"


def _request_text(request: Mapping[str, Any]) -> str:
    """``clients 2; classes 0, 3`` (the request's entries but its kind and its empty ones)."""
    return "; ".join(f"{k} {_text(v)}" for k, v in request.items() if k != "kind" and v is not None)


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)
