"""`llmos up` / `llmos down`: start the daemon in the background, find it, stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from llmos.control._config import ControlConfig
from llmos.control._errors import NotRunning
from llmos.errors import LlmosError

__all__ = ["down", "running", "up"]


def running() -> dict[str, Any] | None:
    """The daemon's record if its process (same pid and start time) is alive, else None."""
    from llmos.control._paths import daemon_file
    from llmos.executor import Proc, alive

    try:
        info = json.loads(daemon_file().read_text())
    except (OSError, ValueError):
        return None
    return info if alive(Proc(info["pid"], info["create_time"])) else None


def up(config: ControlConfig, wait_s: float = 60.0) -> tuple[dict[str, Any], bool]:
    """Start the daemon unless one runs; returns (its record, whether it was started now)."""
    import httpx

    from llmos.control._db import split_password
    from llmos.control._paths import control_dir, daemon_file, daemon_log
    from llmos.paths import home

    info = running()
    if info is not None:
        return info, False
    daemon_file().unlink(missing_ok=True)  # a crashed daemon's record
    config_file = control_dir() / "daemon-config.json"
    # The database password never goes into the file: the daemon gets it in its environment.
    public_db, password = split_password(config.db) if config.db else (None, None)
    config_file.write_text(config.model_copy(update={"db": public_db}).model_dump_json(indent=2))
    secret_env = {"LLMOS_DB_PASSWORD": password} if password else {}
    log = daemon_log()
    offset = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llmos.control._daemon", str(config_file)], cwd=home(),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, **secret_env, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + wait_s * (3 if config.ray else 1)  # joining Ray and probing storage take longer
    while time.monotonic() < deadline:
        info = running()
        if info is not None and info["pid"] == proc.pid:
            try:
                from llmos.control._remote import verify_for

                if httpx.get(info["url"] + "/healthz", timeout=2, verify=verify_for(info)).status_code == 200:
                    return info, True
            except httpx.TransportError:
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_bytes()[offset:].decode(errors="replace").strip()[-3000:]
    if proc.poll() is None:
        proc.terminate()
    raise LlmosError(f"the control plane did not start (see {log}):\n{tail}",
                     hint="Fix the cause above; a port in use needs --port (0 picks a free one).")


def down(timeout_s: float = 120.0) -> dict[str, Any]:
    """Stop the daemon (it checkpoints running jobs first) and wait for it to exit."""
    from llmos.executor import Proc, alive

    info = running()
    if info is None:
        raise NotRunning("no control plane is running for this LLMOS_HOME.", hint="Start one with: llmos up")
    proc = Proc(info["pid"], info["create_time"])
    os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive(proc):
        if time.monotonic() > deadline:
            raise LlmosError(f"the control plane (pid {proc.pid}) did not stop within {timeout_s:g} s.",
                             hint=f"Look at its log, or stop it hard with: kill -9 {proc.pid}")
        time.sleep(0.05)
    return info
