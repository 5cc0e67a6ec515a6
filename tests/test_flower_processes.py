"""A local deployment leaves no process behind when its caller is interrupted (issue 30).

The daemons run in sessions of their own, so a signal to the caller does not reach them: the
caller must stop them. Fake daemons (a script that listens on its ``--port``) stand in for
Flower's, so these tests take seconds and need no Flower run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr", reason="the [flower] extra is not installed")

_DAEMON = """\
import socket, sys, time
port = int(sys.argv[sys.argv.index("--port") + 1])
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    time.sleep(3600)
"""

_CALLER = """\
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal: a test runner's
# worker may ignore SIGINT, and a child inherits that (Python then installs no handler)
from pathlib import Path
from fednot.integrations.flower.local import processes

daemon, workdir, pids, mode = sys.argv[1:5]
processes._tool = lambda name: daemon
slow = processes.wait_for_port

def wait(port, timeout, process):
    slow(port, timeout, process)
    Path(pids).write_text(" ".join(str(p.pid) for p in deployment.processes))
    if mode == "start" and len(deployment.processes) == 2:  # hang in start-up, 2nd of 3 up
        import time; time.sleep(3600)

processes.wait_for_port = wait
deployment = processes.LocalDeployment([{}, {}], Path(workdir))
with deployment:
    import time; time.sleep(3600)  # mode "run": signalled while the deployment runs
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path("/proc").is_dir() else "R"
    return state != "Z"  # a zombie has exited; its parent (the test runner, via init) reaps it


def _interrupt(tmp_path: Path, mode: str, sig: signal.Signals, expected: int) -> None:
    daemon = tmp_path / "daemon"
    daemon.write_text(f"#!{sys.executable}\n{_DAEMON}")
    daemon.chmod(0o755)
    pids = tmp_path / "pids"
    caller = subprocess.Popen(
        [sys.executable, "-c", _CALLER, str(daemon), str(tmp_path / "work"), str(pids), mode],
        stderr=subprocess.PIPE,
    )
    want = 2 if mode == "start" else 3
    started: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not (pids.exists() and len(pids.read_text().split()) == want):
            assert caller.poll() is None, caller.stderr.read() if caller.stderr else ""
            assert time.monotonic() < deadline, "the fake deployment did not start"
            time.sleep(0.05)
        started = [int(p) for p in pids.read_text().split()]
        assert all(_alive(p) for p in started)
        caller.send_signal(sig)
        assert caller.wait(timeout=30) == expected
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [p for p in started if _alive(p)]
        assert not left, f"{mode}: daemons {left} outlived their caller"
    finally:  # whatever failed, leave nothing running
        caller.kill()
        caller.wait()
        for pid in started or [int(p) for p in (pids.read_text() if pids.exists() else "").split()]:
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)


@pytest.mark.parametrize("mode", ["run", "start"])
def test_sigterm_stops_every_daemon(tmp_path: Path, mode: str) -> None:
    _interrupt(tmp_path, mode, signal.SIGTERM, 128 + signal.SIGTERM)


@pytest.mark.parametrize("mode", ["run", "start"])
def test_ctrl_c_stops_every_daemon(tmp_path: Path, mode: str) -> None:
    _interrupt(tmp_path, mode, signal.SIGINT, -signal.SIGINT)  # Python re-raises the SIGINT
