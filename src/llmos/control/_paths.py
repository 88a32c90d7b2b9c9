"""Where the control plane keeps its files under LLMOS_HOME."""

from __future__ import annotations

from pathlib import Path

from llmos.paths import home, jobs_dir

__all__ = ["admin_token_file", "control_dir", "daemon_file", "daemon_log", "job_dir"]


def control_dir() -> Path:
    """The control plane's own folder, 0700: tokens, the state database, configuration, keys, logs."""
    path = home() / "control"
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.chmod(0o700)
    return path


def daemon_file() -> Path:
    """Written by a running daemon: its pid, process start time and URL."""
    return control_dir() / "daemon.json"


def daemon_log() -> Path:
    return control_dir() / "daemon.log"


def admin_token_file() -> Path:
    return control_dir() / "admin.token"


def job_dir(job_id: int) -> Path:
    """A job's logs and attempt records: attempt-N/{launcher.log, worker-R.log, exit.json}."""
    return jobs_dir() / str(job_id)
