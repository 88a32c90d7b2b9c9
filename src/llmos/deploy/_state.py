"""What a restarted daemon needs to adopt a deployment's live replicas, as JSON in its state folder.

Written atomically (temp file + rename) so a daemon killed mid-write leaves the previous version.
Times on the controller's clock are not stored: a new daemon may run on a different clock.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmos.deploy._errors import DeployError

__all__ = ["SavedReplica", "SavedState", "load_state", "save_state", "state_path"]

_FILE = "deployment.json"
_FORMAT = 1


@dataclass
class SavedReplica:
    replica_id: str
    pid: int
    started_at: float  # the process's start time (psutil), which tells it from a recycled pid
    port: int
    revision: str
    draining: bool


@dataclass
class SavedState:
    name: str
    target: str  # the revision the deployment wants
    desired: int
    next_replica: int
    jobs: dict[str, dict[str, Any]]  # revision -> the pinned ServeJob its replicas run
    replicas: list[SavedReplica] = field(default_factory=list)
    format: int = _FORMAT


def state_path(state_dir: Path) -> Path:
    return state_dir / _FILE


def save_state(state_dir: Path, state: SavedState) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_path(state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, path)


def load_state(state_dir: Path) -> SavedState | None:
    path = state_path(state_dir)
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        replicas = [SavedReplica(**r) for r in raw.pop("replicas")]
        if raw.get("format") != _FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, expected {_FORMAT}")
        return SavedState(**raw, replicas=replicas)
    except (ValueError, TypeError, KeyError) as exc:
        raise DeployError(f"the deployment state {path} cannot be read: {exc}.",
                          hint="Stop the replicas it lists by hand if any still run, then move the file "
                               "aside.") from None
