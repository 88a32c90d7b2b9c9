"""`eval.jsonl` in a run folder: one line per evaluation, `{"step": N, "metrics": {...}}`.

Rank 0 appends; a sweep's driver (the daemon, or `llmos sweep run`) reads it to feed the pruner,
so a trial needs no access to the control plane's database. A line is written whole with one
`write` call, and a reader skips a last line that is not yet complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["append", "read"]

FILE = "eval.jsonl"


def append(run_dir: Path, step: int, metrics: dict[str, float]) -> None:
    line = json.dumps({"step": int(step), "metrics": {k: float(v) for k, v in metrics.items()}}) + "\n"
    fd = os.open(run_dir / FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read(run_dir: Path) -> list[tuple[int, dict[str, float]]]:
    """(step, metrics) of every complete line, in order; empty when there is no file yet."""
    try:
        text = (Path(run_dir) / FILE).read_text()
    except OSError:
        return []
    rows = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # being written
        try:
            row = json.loads(line)
            rows.append((int(row["step"]), dict(row["metrics"])))
        except (ValueError, KeyError, TypeError):
            continue
    return rows
