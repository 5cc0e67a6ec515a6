"""Progress reporting for long runs: one line per round, with the phase and key metrics."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from fednot.federation.fedavg import RoundRecord


class Progress:
    """Writes progress lines to a stream (standard error by default).

    On a terminal, round lines overwrite each other and only each phase's last round stays;
    elsewhere (CI logs, files) every ``every``-th round and the last one are written.
    """

    def __init__(self, stream: TextIO | None = None, *, every: int = 10) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self.tty = self.stream.isatty()
        self._open_line = False

    def phase(self, text: str) -> None:
        """Announce a phase (e.g. ``seed 0: pre-training``)."""
        self._end_line()
        self.stream.write(f"==> {text}\n")
        self.stream.flush()

    def info(self, text: str) -> None:
        """A free-form line."""
        self._end_line()
        self.stream.write(f"    {text}\n")
        self.stream.flush()

    def round(self, phase: str, record: RoundRecord, total: int) -> None:
        """Report a finished round."""
        line = (
            f"    [{phase}] round {record.round:>3}/{total}  loss {record.train_loss:.4f}  "
            f"val acc {record.val_acc:6.2f}%  ({record.seconds:.1f} s)"
        )
        if self.tty:
            self.stream.write("\r" + line)
            self._open_line = True
        elif record.round % self.every == 0 or record.round == total or record.round == 1:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False


class Silent(Progress):
    """A progress reporter that writes nothing."""

    def phase(self, text: str) -> None:
        """Do nothing."""

    def info(self, text: str) -> None:
        """Do nothing."""

    def round(self, phase: str, record: RoundRecord, total: int) -> None:
        """Do nothing."""
