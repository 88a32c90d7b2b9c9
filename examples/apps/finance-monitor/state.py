"""The monitor's durable progress: one JSON state file, written atomically, and two append-only logs.

state.json holds how far the stream has been read (a byte offset), every company's rolling state
and open episodes, the alerts not yet delivered (the outbox), and how long the logs were at that
moment. It is replaced in one `os.replace` after an fsync, so a kill leaves either the old or the
new file, never half of one. On start the logs are cut back to the recorded lengths: lines written
after the last commit belong to headlines that will be read again, so each is kept exactly once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

LOGS = ("scored", "alerts")  # scored.jsonl: every headline with its label; alerts.jsonl: the alert log


def initial() -> dict:
    return {"offset": 0, "companies": {}, "outbox": [], "sizes": {name: 0 for name in LOGS}, "headlines": 0}


class Store:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "state.json"

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.jsonl"

    def load(self) -> dict:
        """The last committed state; the logs cut back to it."""
        state = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else initial()
        for name in LOGS:
            path = self.log_path(name)
            with path.open("ab") as f:
                f.truncate(state["sizes"][name])
        return state

    def append(self, state: dict, name: str, rows: list[dict]) -> None:
        """Write rows to a log (flushed, not yet committed); `state` records the new length."""
        if not rows:
            return
        with self.log_path(name).open("ab") as f:
            f.write("".join(json.dumps(row) + "\n" for row in rows).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
            state["sizes"][name] = f.tell()

    def commit(self, state: dict) -> None:
        """Replace state.json with `state` in one step."""
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself survives a power cut
        finally:
            os.close(fd)


def read_new(stream: Path, offset: int, max_lines: int) -> tuple[list[tuple[int, bytes]], int]:
    """Whole lines after `offset` (at most max_lines) with their own offsets, and the offset after them.

    A line still being written (no newline yet) is left for the next call."""
    if not stream.exists():
        return [], offset
    with stream.open("rb") as f:
        f.seek(offset)
        chunk = f.read(1 << 20)
    lines, pos = [], offset
    for raw in chunk.split(b"\n")[:-1][:max_lines]:
        lines.append((pos, raw))
        pos += len(raw) + 1
    return lines, pos
