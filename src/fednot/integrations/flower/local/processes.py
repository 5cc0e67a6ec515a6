"""Flower's daemons on this machine: one SuperLink and N SuperNodes on 127.0.0.1.

`LocalDeployment` starts ``flower-superlink`` and one ``flower-supernode`` per node config on
free loopback ports (``--insecure``: loopback only), with runtime dependency installation off and
Flower's network calls (telemetry, update checks) disabled, submits runs with ``flwr run <app>
local-deployment --stream``, and stops every process it started (SIGTERM to each process group,
then SIGKILL after 5 s, and SIGKILL to any process left that carries its ``FLWR_HOME``), also
when the caller is interrupted: Ctrl-C or SIGTERM at any time, start-up included.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from fednot.errors import FedNotError
from fednot.integrations.flower.local.appdir import quiet_environment
from fednot.integrations.flower.settings import ConfigValue

_STOP_GRACE_S = 5.0  # seconds between SIGTERM and SIGKILL


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections (or ``process`` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FedNotError(f"{process.args!r} exited with code {process.returncode} at start.")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise FedNotError(f"Nothing listens on 127.0.0.1:{port} after {timeout:.0f} s.")


@dataclass
class RunOutput:
    """A finished ``flwr run``: its exit status, its streamed log and its wall time."""

    returncode: int
    output: str
    seconds: float


@dataclass
class LocalDeployment:
    """A SuperLink and one SuperNode per entry of ``node_configs``, on 127.0.0.1.

    Use as a context manager; `stop` ends every process started, whatever happens.
    """

    node_configs: list[dict[str, ConfigValue]]
    workdir: Path
    start_timeout: float = 60.0
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    port: int = 0
    _previous_sigterm: _Handler = field(default=None, init=False, repr=False)

    def __enter__(self) -> LocalDeployment:
        self._previous_sigterm = _exit_on_sigterm()
        try:
            self.start()
        except BaseException:  # Ctrl-C or SIGTERM during start-up: what started is stopped
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            _restore_sigterm(self._previous_sigterm)

    @property
    def env(self) -> dict[str, str]:
        """The environment of every Flower process: quiet, offline, local FLWR_HOME."""
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        home = str(self.workdir / "flwr-home")
        return {**os.environ, **quiet_environment(Path(home)), "PATH": path}

    def start(self) -> None:
        """Start the SuperLink, then the SuperNodes; wait until each one listens."""
        self.port = free_port()
        self._write_cli_config()
        self._spawn(
            "superlink",
            [
                _tool("flower-superlink"),
                "--insecure",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--disable-runtime-dependency-installation",
            ],
            self.port,
        )
        for k, node_config in enumerate(self.node_configs):
            port = free_port()
            text = " ".join(f"{key}={json.dumps(v)}" for key, v in node_config.items())
            self._spawn(
                f"supernode-{k}",
                [
                    _tool("flower-supernode"),
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{self.port}",
                    "--node-config",
                    text,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                port,
            )

    def run(
        self,
        app: Path,
        run_config: Mapping[str, ConfigValue],
        timeout: float,
        *,
        echo: bool = False,
    ) -> RunOutput:
        """``flwr run <app> local-deployment --stream`` with ``run_config`` overrides.

        The streamed log is captured (and printed as it comes with ``echo``); a run that
        exceeds ``timeout`` seconds is killed and returns a negative exit status.
        """
        overrides = " ".join(f"{k}={json.dumps(v)}" for k, v in run_config.items())
        command = [_tool("flwr"), "run", str(app), "local-deployment", "--stream"]
        if overrides:
            command += ["--run-config", overrides]
        start = time.perf_counter()
        process = subprocess.Popen(
            command,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=_pump, args=(process, lines, echo), daemon=True)
        reader.start()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal(process, signal.SIGKILL)
            process.wait()
            lines.append(f"\nfednot: flwr run killed after {timeout:.0f} s\n")
        except BaseException:  # Ctrl-C or SIGTERM: flwr run has its own session, end it too
            _signal(process, signal.SIGKILL)
            process.wait()
            raise
        reader.join(timeout=_STOP_GRACE_S)
        return RunOutput(process.returncode, "".join(lines), time.perf_counter() - start)

    def stop(self) -> None:
        """SIGTERM every process group started, then SIGKILL what is left after 5 s."""
        for process in self.processes:
            _signal(process, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        for process in self.processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes:
            _signal(process, signal.SIGKILL)  # the group: children such as flwr-clientapp too
            if process.poll() is None:
                process.wait(timeout=_STOP_GRACE_S)
        self.processes.clear()
        self._kill_stragglers()

    def _kill_stragglers(self) -> None:
        """SIGKILL what the daemons started outside their process groups, found by FLWR_HOME.

        Waits (up to 5 s) until none is left, so that the caller can remove ``workdir``.
        """
        marker = f"FLWR_HOME={self.workdir / 'flwr-home'}".encode()
        deadline = time.monotonic() + _STOP_GRACE_S
        while (left := processes_with(marker)) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.1)

    def _spawn(self, name: str, command: list[str], port: int) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        wait_for_port(port, self.start_timeout, process)

    def _write_cli_config(self) -> None:
        home = self.workdir / "flwr-home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "local-deployment"\n\n[superlink.local-deployment]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n'
        )


def _pump(process: subprocess.Popen[bytes], lines: list[str], echo: bool) -> None:
    """Collect (and print) a process's output line by line."""
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.decode(errors="replace")
        lines.append(line)
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()


def processes_with(marker: bytes) -> list[int]:
    """Ids of live processes (not this one) whose environment holds the entry ``marker``.

    Reads ``/proc``; elsewhere (no ``/proc``) it finds nothing. Exited processes whose parent has
    not reaped them yet have an empty environment and are not listed.
    """
    found: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


_Handler = Callable[[int, FrameType | None], Any] | int | None
"""What ``signal.signal`` returns: a handler, ``SIG_DFL``/``SIG_IGN``, or ``None``."""


def _exit_on_sigterm() -> _Handler:
    """Make SIGTERM raise ``SystemExit(143)`` in this process, so that `stop` runs.

    Python's default SIGTERM ends the process at once, skipping ``finally`` and ``__exit__``;
    the daemons run in sessions of their own and would outlive it. Returns the handler to put
    back (`_restore_sigterm`); outside the main thread, where handlers cannot be set, nothing
    changes and ``None`` is returned.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous: _Handler) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def _signal(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tool(name: str) -> str:
    """A Flower command from this interpreter's environment."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FedNotError(
            f"{name} is not installed next to {sys.executable}: pip install 'fednot[flower]'."
        )
    return str(path)
