"""The one interface every executor backend offers the control loop.

A backend starts a placed attempt and hands back a *handle* (a JSON string the loop stores with
the job), then answers from that handle alone — so a restarted daemon polls, signals and adopts
attempts it did not start. Every worker writes its output into the attempt folder
(`attempt_dir`), which is on storage every node sees; the control plane streams logs from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel

from llmos.errors import LlmosError

__all__ = ["Executor", "Exit", "NotPlaced", "attempt_dir", "exit_record"]


class NotPlaced(LlmosError):
    """The attempt could not start for a reason of the cluster's, not the job's (a chosen node left
    before its resources were reserved): the loop counts it as a failed attempt and retries it."""


class Exit(NamedTuple):
    """How an attempt ended: its exit code (None: it vanished without one, e.g. a lost node or
    SIGKILL) and when (None: unknown; the loop uses the time it noticed)."""

    code: int | None
    ended_s: float | None


class Executor(Protocol):
    backend: str

    def attempt_dir(self, job_id: int, attempt: int) -> Path: ...

    def launch(self, job_id: int, attempt: int, job: BaseModel, placement: dict[str, Any]) -> str:
        """Start attempt `attempt` of `job` where `placement` says; returns the attempt's handle."""
        ...

    def poll(self, handle: str, folder: Path) -> Exit | None:
        """How the attempt ended, or None while it runs."""
        ...

    def alive(self, handle: str) -> bool:
        """Whether the attempt still runs (after a restart: adopt it, or reap it)."""
        ...

    def terminate(self, handle: str) -> None:
        """SIGTERM to every worker: they checkpoint and exit 75."""
        ...

    def kill(self, handle: str) -> None:
        """SIGKILL every process of the attempt, on every node."""
        ...


def attempt_dir(job_id: int, attempt: int) -> Path:
    from llmos.paths import jobs_dir

    return jobs_dir() / str(job_id) / f"attempt-{attempt}"


def exit_record(path: Path) -> Exit | None:
    """The exit a program's supervisor wrote (the local shim's exit.json, a Ray worker's exit-RANK.json)."""
    import json

    try:
        data = json.loads(path.read_text())
        return Exit(int(data["exit_code"]), float(data["ended_s"]))
    except (OSError, ValueError, KeyError):
        return None
