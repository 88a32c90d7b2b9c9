"""Log files of jobs and deployments as the API serves them: a listing, and a chunk of one file
from an offset on (so that a follower asks only for what is new)."""

from __future__ import annotations

from pathlib import Path

from llmos.control._errors import NotFound

__all__ = ["list_logs", "read_chunk"]

_LOG_CHUNK = 1 << 20


def list_logs(files: list[Path], folder: Path) -> list[dict]:
    return [{"name": str(p.relative_to(folder)), "size": p.stat().st_size} for p in files]


def read_chunk(folder: Path, name: str, offset: int, what: str, listing: str) -> dict:
    """Up to 1 MiB of `folder/name` from `offset`; a name outside the folder, or not a .log file, is
    a 404 naming `what` (`job 3`) and the command that lists its logs."""
    folder = folder.resolve()
    path = (folder / name).resolve()
    if folder not in path.parents or path.suffix != ".log" or not path.is_file():
        raise NotFound(f"{what} has no log {name!r}.", hint=f"List its logs with: {listing}")
    with open(path, "rb") as f:
        f.seek(max(0, offset))
        data = f.read(_LOG_CHUNK)
    return {"name": name, "offset": offset + len(data), "text": data.decode("utf-8", "replace")}
