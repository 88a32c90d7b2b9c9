"""Processes the deployment starts: SIGTERM must reach them whichever thread started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from llmos.deploy._process import default_spawn

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
