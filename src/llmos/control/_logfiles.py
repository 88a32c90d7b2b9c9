"""Log files of jobs and deployments as the API serves them: a listing, and a chunk of one file
from an offset on (so that a follower asks only for what is new)."""

from __future__ import annotations

from pathlib import Path

from llmos.control._errors import NotFound

__all__ = ["list_logs", "read_chunk", "redact"]

_LOG_CHUNK = 1 << 20


def list_logs(files: list[Path], folder: Path) -> list[dict]:
    return [{"name": str(p.relative_to(folder)), "size": p.stat().st_size} for p in files]


def read_chunk(folder: Path, name: str, offset: int, what: str, listing: str, hide: list[str] | None = None) -> dict:
    """Up to 1 MiB of `folder/name` from `offset`; a name outside the folder, or not a .log file, is
    a 404 naming `what` (`job 3`) and the command that lists its logs. Every occurrence of a string in
    `hide` (the job's secrets) comes back as `***`, also one that a chunk's edge or `offset` cuts."""
    folder = folder.resolve()
    path = (folder / name).resolve()
    if folder not in path.parents or path.suffix != ".log" or not path.is_file():
        raise NotFound(f"{what} has no log {name!r}.", hint=f"List its logs with: {listing}")
    offset = max(0, offset)
    secrets = [h.encode() for h in hide or [] if h]
    margin = max((len(h) for h in secrets), default=1) - 1  # bytes either side a secret may straddle
    start = max(0, offset - margin)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(offset - start + _LOG_CHUNK + margin)
    text, end = redact(data, offset - start, _LOG_CHUNK, secrets)
    return {"name": name, "offset": start + end, "text": text.decode("utf-8", "replace")}


def redact(data: bytes, lo: int, limit: int, secrets: list[bytes]) -> tuple[bytes, int]:
    """(`data[lo:end]` with each secret shown as `***`, `end`), where `end` is about `lo + limit`: moved
    past a secret the limit would cut. `data` holds the bytes before `lo` and after the limit that a
    secret cut by either edge needs. At the end of `data` (the file so far), a tail of 3 or more
    bytes that starts a secret is shown as `***` too (the job may be writing it). Pure."""
    if lo >= len(data):
        return b"", lo
    spans = _spans(data, secrets)
    end = min(len(data), lo + limit)
    for a, b in spans:
        if a < end < b:
            end = b
    if end == len(data):
        tail = max((k for s in secrets for k in range(1, len(s))
                    if (k >= 3 or k == len(s) - 1) and data.endswith(s[:k])), default=0)
        if tail and not any(a < end <= b for a, b in spans):
            spans.append((end - tail, end))
    out, at = [], lo
    for a, b in sorted(spans):
        if b <= at or a >= end:
            continue
        out += [data[at:max(a, at)], b"***"]
        at = min(b, end)
    out.append(data[at:end])
    return b"".join(out), end


def _spans(data: bytes, secrets: list[bytes]) -> list[tuple[int, int]]:
    """Where the secrets occur in `data`, overlapping occurrences merged."""
    found = []
    for s in secrets:
        i = data.find(s)
        while i != -1:
            found.append((i, i + len(s)))
            i = data.find(s, i + 1)
    merged: list[tuple[int, int]] = []
    for a, b in sorted(found):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged
