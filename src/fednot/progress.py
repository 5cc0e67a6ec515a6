"""Progress reporting for long runs: phases, rounds, cells done, elapsed time and an estimate.

A run (`fednot.benchmark.runner.Run`) announces its cells with `Progress.plan` and counts each
finished one with `Progress.cell_done`; phase and round lines then carry ``cell i/N``, the time
elapsed and, once a cell has finished, an estimate of the time left: mean seconds per finished cell
times the cells left, less what the cell under way has run (at most one cell's mean). Round
lines also estimate what is left of their phase (mean seconds per round so far times the rounds
left in its budget: an upper bound when a stop rule ends early).

On a terminal, round lines and notes redraw one line (a carriage return); elsewhere (a pipe, a
file, a notebook) every line is a plain line, and round lines and notes come at a modest rate.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO


class RoundLine(Protocol):
    """What a progress line reads of a finished round (`fednot.federation.fedavg.RoundRecord`).

    Declared here so that this module, which the round loop imports, imports nothing of fednot.
    """

    @property
    def round(self) -> int:
        """The round's number, from 1."""
        ...

    @property
    def clients(self) -> tuple[int, ...]:
        """Who took part."""
        ...

    @property
    def train_loss(self) -> float:
        """The clients' training loss, weighted by their samples."""
        ...

    @property
    def val_acc(self) -> float:
        """The validation accuracy (%); NaN when the round was not validated."""
        ...

    @property
    def seconds(self) -> float:
        """How long the round took."""
        ...


def clock_text(seconds: float) -> str:
    """``seconds`` as ``m:ss`` (``h:mm:ss`` from an hour on)."""
    minutes, secs = divmod(round(max(seconds, 0.0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def tagged(text: str, status: list[str]) -> str:
    """``text  [a | b | c]`` (``text`` alone without a status)."""
    return f"{text}  [{' | '.join(status)}]" if status else text


class Progress:
    """Writes progress lines to a stream (standard error by default).

    On a terminal, round lines and notes overwrite each other and only each phase's last round
    stays; elsewhere (CI logs, files, notebooks) a round line or a note is written when it is
    the phase's first or last round, every ``every``-th round, or ``interval`` seconds after the
    previous line. Phase, info and cell lines are always written.

    Args:
        stream: where lines go (default: standard error).
        every: off a terminal, write every this many rounds.
        interval: off a terminal, write a round line or a note this many seconds after the last.
        clock: seconds on a monotonic clock (tests pass a fake one).
    """

    REDRAW = 0.2
    """On a terminal, redraw a note at most this often (seconds)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        every: int = 10,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self.interval = interval
        self.clock = clock
        self.tty = self.stream.isatty()
        self._open = 0  # length of the line a terminal shows open (0: none)
        self._start = self._last = self._phase_at = clock()
        self.total, self.done, self.jobs = 0, 0, 1
        self._planned_at, self._done_at, self._finished = self._start, self._start, 0
        # the phase of the last round line: its label, the round and time its estimate counts
        # from, and the last round seen
        self._rounds: tuple[str, int, float, int] = ("", 0, self._start, 0)

    # -- the run's cells ------------------------------------------------------------------

    def plan(self, total: int, *, done: int = 0, jobs: int = 1) -> None:
        """The run has ``total`` cells, ``done`` of them finished before; ``jobs`` run at once."""
        self.total, self.done, self.jobs = total, done, jobs
        self._planned_at, self._finished = self.clock(), 0
        self._done_at = self._planned_at

    def cell_done(self, text: str) -> None:
        """Count a finished cell and write ``text`` (its result) with the count and estimate."""
        self.done += 1
        self._finished += 1
        self._done_at = self.clock()
        self.info(tagged(text, self.status(count=f"{self.done}/{self.total} cells done")))

    def status(self, *, count: str | None = None, phase_left: float | None = None) -> list[str]:
        """``cell i/N``, ``m:ss elapsed``, ``run about m:ss left (estimate)``, as far as known."""
        now = self.clock()
        parts = [] if count is None else [count]
        if count is None and self.total:
            cell = f"cell {min(self.done + 1, self.total)}/{self.total}"
            parts.append(cell if self.jobs == 1 else f"{self.done}/{self.total} cells done")
        parts.append(f"{clock_text(now - self._start)} elapsed")
        guesses = [] if phase_left is None else [f"phase about {clock_text(phase_left)} left"]
        if self._finished and self.done < self.total:
            per_cell = (self._done_at - self._planned_at) / self._finished
            current = max(per_cell - (now - self._done_at), 0.0)  # the cell under way
            left = per_cell * (self.total - self.done - 1) + current
            guesses.append(f"run about {clock_text(left)} left")
        if guesses:
            parts.append(", ".join(guesses) + " (estimate)")
        return parts

    # -- lines ----------------------------------------------------------------------------

    def phase(self, text: str) -> None:
        """Announce a phase (e.g. ``seed 0: pre-training``), with the status."""
        self._line(tagged(f"==> {text}", self.status()))
        self._phase_at = self._last

    def info(self, text: str) -> None:
        """A free-form line."""
        self._line(f"    {text}")

    def note(self, text: str) -> None:
        """A passing remark (``evaluating a trajectory point``): redrawn, or at a modest rate."""
        if self.clock() - self._last >= (self.REDRAW if self.tty else self.interval):
            self._transient(f"    {text}", self.status())

    def round(self, phase: str, record: RoundLine, total: int) -> None:
        """Report a finished round."""
        now, (label, base, since, last) = self.clock(), self._rounds
        if label != phase or record.round <= last:  # a new phase (or a resumed one)
            # round 1 counts from the phase's own line, a resumed phase from its first round
            base, since = (0, self._phase_at) if record.round == 1 else (record.round, now)
        self._rounds = (phase, base, since, record.round)
        timed = record.round - base
        left = None
        if timed and record.round < total:
            left = (now - since) / timed * (total - record.round)
        line = (
            f"    [{phase}] round {record.round:>3}/{total}  loss {record.train_loss:.4f}  "
            f"val acc {record.val_acc:6.2f}%  ({record.seconds:.1f} s)"
        )
        due = record.round % self.every == 0 or record.round in (1, total)
        if self.tty or due or now - self._last >= self.interval:
            self._transient(line, self.status(phase_left=left))

    # -- writing --------------------------------------------------------------------------

    def _line(self, text: str) -> None:
        self._end_line()
        self._write(text + "\n")

    def _transient(self, text: str, status: list[str]) -> None:
        """A line a terminal redraws in place, fitted to its width; a plain line elsewhere.

        To fit, the status drops the time elapsed, then the cell count; then the line is cut.
        """
        if not self.tty:
            self._write(tagged(text, status) + "\n")
            return
        width = shutil.get_terminal_size().columns - 1
        for least_needed in ("elapsed", "cell"):
            if len(tagged(text, status)) > width:
                status = [part for part in status if least_needed not in part]
        text = tagged(text, status)[:width]
        self._write("\r" + text.ljust(self._open))
        self._open = len(text)

    def _end_line(self) -> None:
        if self._open:
            self._write("\n")
            self._open = 0

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
        self._last = self.clock()


class Silent(Progress):
    """A progress reporter that writes nothing."""

    def phase(self, text: str) -> None:
        """Do nothing."""

    def info(self, text: str) -> None:
        """Do nothing."""

    def note(self, text: str) -> None:
        """Do nothing."""

    def round(self, phase: str, record: RoundLine, total: int) -> None:
        """Do nothing."""
