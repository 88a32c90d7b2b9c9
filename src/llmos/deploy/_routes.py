"""What the controller and the front router tell each other: two small JSON files in the
deployment's state folder, so the front keeps routing while no controller runs.

`routes.json` (controller -> front): the replicas to route to, each with its port, revision, and
whether the controller last knew it ready or has taken it out of routing (draining). Written only
when it changes, atomically and durably (temp file, fsync, rename): a daemon killed mid-write
leaves the previous set, never half of one.
During a canary, routes.json also holds the traffic split (`Split`).
`front-report.json` (front -> controller): what the front saw per replica (its own readiness
probes, requests in flight, load over the window the controller asked for) and per revision
(running totals for a canary's verdict: `VersionCounts`), rewritten every
0.2 s. Not fsynced: it is stale in 0.2 s anyway, and a lost one is replaced by the next.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llmos.deploy._split import Split
from llmos.deploy._version_figures import VersionCounts

__all__ = ["REPORT_FILE", "ROUTES_FILE", "FrontReport", "ReplicaReport", "Route", "RouteSet", "decode_report",
           "decode_routes", "encode_report", "encode_routes", "read_report", "write_atomic"]

ROUTES_FILE = "routes.json"
REPORT_FILE = "front-report.json"
_FORMAT = 1


@dataclass(frozen=True)
class Route:
    replica_id: str
    port: int
    revision: str
    ready: bool  # the controller's last word; a front that knows the replica trusts its own probes
    draining: bool  # out of routing: no new request may reach it
    host: str = "127.0.0.1"  # where it listens: loopback locally, its node's address on a Ray cluster


@dataclass(frozen=True)
class RouteSet:
    name: str  # the deployment's
    load_window_s: float  # how far back the reported mean load and p95 latency look
    routes: tuple[Route, ...]
    split: Split | None = None  # during a canary: the weighted split between two revisions


@dataclass(frozen=True)
class ReplicaReport:
    healthy: bool  # its latest probes passed
    ever_ready: bool
    draining: bool  # the front has applied the drain: it sends this replica nothing new
    outstanding: int  # requests in flight on it now
    dispatched: int  # requests sent to it since the front started
    mean_outstanding: float  # over the last load_window_s
    p95_ms: float | None  # time to the response headers over the last load_window_s


@dataclass(frozen=True)
class FrontReport:
    pid: int  # the front process that wrote it: a report of a front that was replaced is ignored
    replicas: dict[str, ReplicaReport]
    versions: dict[str, VersionCounts] = field(default_factory=dict)  # revision -> running totals


def encode_routes(routes: RouteSet) -> str:
    return json.dumps({"format": _FORMAT, **asdict(routes)}, indent=1, sort_keys=True)


def decode_routes(text: str) -> RouteSet:
    """ValueError naming what is wrong when `text` is not a routes file of this format."""
    try:
        raw = _object(text)
        entries = tuple(Route(**entry) for entry in raw["routes"])
        split = Split(**raw["split"]) if raw.get("split") else None
        return RouteSet(str(raw["name"]), float(raw["load_window_s"]), entries, split)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a routes file: {exc!r}") from None


def encode_report(report: FrontReport) -> str:
    return json.dumps({"format": _FORMAT, **asdict(report)}, sort_keys=True)


def decode_report(text: str) -> FrontReport:
    try:
        raw = _object(text)
        versions = {rev: VersionCounts(**v) for rev, v in raw.get("versions", {}).items()}
        return FrontReport(int(raw["pid"]), {rid: ReplicaReport(**r) for rid, r in raw["replicas"].items()}, versions)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a front report: {exc!r}") from None


def read_report(state_dir: Path) -> FrontReport | None:
    """The front's latest report; None while there is none (or it cannot be read: the next replaces it)."""
    try:
        return decode_report((state_dir / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_atomic(path: Path, text: str, durable: bool) -> None:
    """Replace `path` with `text` in one step; `durable` also syncs it to disk before the rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as out:
        out.write(text)
        if durable:
            out.flush()
            os.fsync(out.fileno())
    os.replace(tmp, path)
    if durable:  # the rename itself is durable once the folder is synced
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _object(text: str) -> dict:
    raw = json.loads(text)  # json.JSONDecodeError is a ValueError
    if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"format {found!r}, expected {_FORMAT}")
    del raw["format"]
    return raw
