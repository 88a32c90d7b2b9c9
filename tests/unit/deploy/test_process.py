"""Processes the deployment starts: SIGTERM must reach them whichever thread started them."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from llmos import _forkserver
from llmos.deploy._process import ForkedReplica, default_spawn

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_child_started_by_a_thread_that_blocks_sigterm_still_stops_on_it(tmp_path: Path) -> None:
    # The control plane's API thread blocks SIGTERM; `llmos deploy` starts the front and the first
    # replicas from there. A child inherits the mask: SIGTERM would never drain it.
    started: list[subprocess.Popen] = []

    def spawn_with_sigterm_blocked() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        started.append(default_spawn(SLEEP, dict(os.environ), tmp_path / "child.log"))
        assert signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # the thread's own mask is back

    thread = threading.Thread(target=spawn_with_sigterm_blocked)
    thread.start()
    thread.join()
    child = started[0]
    try:
        child.terminate()
        assert child.wait(timeout=20) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()


def test_a_replica_forks_warm_once_its_server_listens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A standalone deployment's replicas (`python -m llmos.deploy`) start as the daemon's do: the
    first starts the warm server and runs as a new process, the ones after it are forked from there,
    kept to the caller's cores, with their output in their log and their exit status beside it."""
    runtime = Path(tempfile.mkdtemp(prefix="llmos-test-"))  # short: a socket's path has 108 bytes
    monkeypatch.setenv("LLMOS_RUNTIME_DIR", str(runtime))
    monkeypatch.setitem(_forkserver.PRELOAD, "probe", ("server", ("json",)))
    monkeypatch.chdir(tmp_path)  # a program is run from the caller's folder, as `python -m` runs it
    (tmp_path / "probe.py").write_text("import os, time\nprint('up', sorted(os.sched_getaffinity(0)), flush=True)\n"
                                       "time.sleep(60)\n")
    env = {"PATH": os.environ["PATH"]}
    started: list[subprocess.Popen | ForkedReplica] = []
    try:
        first = default_spawn([sys.executable, "-m", "probe"], env, tmp_path / "r1.log")
        started.append(first)
        assert isinstance(first, subprocess.Popen)  # nothing listened yet: a new process, the server starting
        deadline = time.monotonic() + 120
        while not isinstance(started[-1], ForkedReplica):
            assert time.monotonic() < deadline, "no replica was forked warm within 120 s"
            _kill(started[-1])
            time.sleep(0.5)
            started.append(default_spawn([sys.executable, "-m", "probe"], env, tmp_path / f"r{len(started) + 1}.log"))
        warm = started[-1]
        log = tmp_path / f"r{len(started)}.log"
        while "up" not in (log.read_text() if log.exists() else ""):
            assert warm.alive() and time.monotonic() < deadline, "the warm replica wrote nothing"
            time.sleep(0.1)
        assert log.read_text().strip() == f"up {sorted(os.sched_getaffinity(0))}"
        warm.signal(signal.SIGTERM)  # to its supervisor, as a drain's: passed on to the program
        assert warm.wait(20) and warm.exit_code() == -signal.SIGTERM
    finally:
        for proc in started:
            _kill(proc)
        for server_log in (runtime / f"llmos-warm-{os.getuid()}").glob("*.log"):
            for pid in re.findall(r"fork server (\d+): ready", server_log.read_text()):
                os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(runtime)


def _kill(proc: subprocess.Popen | ForkedReplica) -> None:
    if isinstance(proc, ForkedReplica):
        proc.signal(signal.SIGKILL)  # its supervisor's whole session
    else:
        proc.kill()
        proc.wait()
