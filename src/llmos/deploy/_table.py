"""The controller's replica table: its processes and phases, and what the front last reported.

The front router is another process: it learns the replicas from `routes()` (published as
routes.json) and reports readiness, requests in flight and load back (front-report.json), which
`apply_report` folds in here. A draining replica is idle only once the front has confirmed the
drain *and* reported nothing in flight on it (`drain_done`): the front may have sent it a request
just before it read the drain. The table is touched under the controller's lock only.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmos.deploy._process import ReplicaProc
from llmos.deploy._routes import FrontReport, Route, RouteSet

__all__ = ["ReplicaRecord", "ReplicaTable"]


@dataclass
class ReplicaRecord:
    replica_id: str
    revision: str  # pinned model version + settings digest, e.g. "sentiment/3#1a2b3c4d"
    port: int
    proc: ReplicaProc
    started_s: float | None  # on the controller's clock; None until the first tick sees it
    draining: bool = False
    ever_ready: bool = False
    healthy: bool = False
    outstanding: int = 0  # as the front last reported
    dispatched: int = 0
    mean_outstanding: float = 0.0  # over the load window, as the front last reported
    p95_ms: float | None = None
    drain_done: bool = False  # draining, and the front confirmed it has nothing in flight on it
    drain_started_s: float | None = None
    term_sent_s: float | None = None
    unhealthy_since_s: float | None = None
    host: str = "127.0.0.1"  # where it listens (its node's address on a Ray cluster)

    @property
    def phase(self) -> str:
        return "draining" if self.draining else "ready" if self.ever_ready else "starting"

    @property
    def routable(self) -> bool:
        return self.healthy and not self.draining


class ReplicaTable:
    def __init__(self) -> None:
        self._replicas: dict[str, ReplicaRecord] = {}

    def add(self, record: ReplicaRecord) -> None:
        self._replicas[record.replica_id] = record

    def remove(self, replica_id: str) -> None:
        self._replicas.pop(replica_id, None)

    def records(self) -> list[ReplicaRecord]:
        return list(self._replicas.values())

    def get(self, replica_id: str) -> ReplicaRecord | None:
        return self._replicas.get(replica_id)

    def begin_drain(self, replica_id: str, now: float | None) -> None:
        record = self._replicas.get(replica_id)
        if record is not None and not record.draining:
            record.draining, record.drain_started_s = True, now

    def set_probed(self, replica_id: str, ready: bool) -> None:
        """The controller probed the replica itself (adopting it): ready or not yet."""
        record = self._replicas.get(replica_id)
        if record is not None:
            record.healthy = record.ever_ready = ready

    def routes(self, name: str, load_window_s: float) -> RouteSet:
        return RouteSet(name, load_window_s, tuple(
            Route(r.replica_id, r.port, r.revision, r.ever_ready and r.healthy, r.draining, r.host)
            for r in sorted(self._replicas.values(), key=lambda r: r.replica_id)))

    def apply_report(self, report: FrontReport) -> None:
        for r in self._replicas.values():
            seen = report.replicas.get(r.replica_id)
            if seen is None:  # the front has not read the routes that list it yet
                continue
            r.healthy, r.ever_ready = seen.healthy, r.ever_ready or seen.ever_ready
            r.outstanding, r.dispatched = seen.outstanding, seen.dispatched
            r.mean_outstanding, r.p95_ms = seen.mean_outstanding, seen.p95_ms
            r.drain_done = r.draining and seen.draining and seen.outstanding == 0

    def front_gone(self) -> None:
        """No front process runs: nothing routes to any replica, so every drain is done."""
        for r in self._replicas.values():
            r.outstanding = 0
            r.drain_done = r.draining
