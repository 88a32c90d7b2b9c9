"""What a restarted daemon needs to adopt a deployment's live front router and replicas, as JSON in
its state folder.

Written atomically and durably (temp file, fsync, rename) so a daemon killed mid-write, or a
machine that loses power, leaves the previous version.
Times on the controller's clock are not stored: a new daemon may run on a different clock.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmos.deploy._errors import DeployError
from llmos.deploy._routes import write_atomic

__all__ = ["SavedFront", "SavedReplica", "SavedState", "load_state", "save_state", "state_path"]

_FILE = "deployment.json"
_FORMAT = 2  # 2 added the front process; a format 1 file (no front) still loads
_READABLE = (1, _FORMAT)


@dataclass
class SavedReplica:
    replica_id: str
    pid: int
    started_at: float  # the process's start time (psutil), which tells it from a recycled pid
    port: int
    revision: str
    draining: bool
    host: str = "127.0.0.1"  # where it listens
    actor: str | None = None  # on a Ray cluster: its detached actor's name, by which a new daemon adopts it


@dataclass
class SavedFront:
    pid: int
    started_at: float  # the process's start time (psutil), which tells it from a recycled pid
    port: int


@dataclass
class SavedState:
    name: str
    target: str  # the revision the deployment wants
    desired: int
    next_replica: int
    jobs: dict[str, dict[str, Any]]  # revision -> the pinned ServeJob its replicas run
    replicas: list[SavedReplica] = field(default_factory=list)
    front: SavedFront | None = None
    canary: dict[str, Any] | None = None  # a running canary (`CanaryRun.saved`): a new daemon resumes it
    format: int = _FORMAT


def state_path(state_dir: Path) -> Path:
    return state_dir / _FILE


def save_state(state_dir: Path, state: SavedState) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(state_path(state_dir), json.dumps(asdict(state), indent=2), durable=True)


def load_state(state_dir: Path) -> SavedState | None:
    path = state_path(state_dir)
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        replicas = [SavedReplica(**r) for r in raw.pop("replicas")]
        front = raw.pop("front", None)
        if raw.get("format") not in _READABLE:
            raise ValueError(f"format {raw.get('format')!r}, expected one of {_READABLE}")
        raw["format"] = _FORMAT
        return SavedState(**raw, replicas=replicas, front=None if front is None else SavedFront(**front))
    except (ValueError, TypeError, KeyError) as exc:
        raise DeployError(f"the deployment state {path} cannot be read: {exc}.",
                          hint="Stop the front and the replicas it lists by hand if any still run, then move "
                               "the file aside.") from None
