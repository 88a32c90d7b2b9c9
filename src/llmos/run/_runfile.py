"""`run.json` in a run folder: the MLflow run id and the run's status, shared by the launcher and
the recipe (launching → running → finished | preempted)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["read", "update"]


def read(run_dir: Path) -> dict[str, Any]:
    """The run file's fields; empty when there is none or it is unreadable."""
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def update(run_dir: Path, **fields: Any) -> None:
    """Merge `fields` into the run file, atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps({**read(run_dir), **fields}, indent=2))
    os.replace(tmp, run_dir / "run.json")
