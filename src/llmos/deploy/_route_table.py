"""The front router's table: the replicas it routes to, their readiness and the load it measured.

The request path picks a replica and counts the request against it in one step, under one lock,
so a replica whose drain the front has applied never receives another request; the report the
front writes for the controller is taken under the same lock, so "draining, nothing in flight"
in a report is final. Critical sections are a few field updates: the lock is never held across I/O.

During a canary the controller's `Split` decides first which revision a request goes to
(`pick_revision`), then the least-loaded replica of that revision takes it; when that revision has
no routable replica, any routable replica does (a canary not ready yet, or gone, costs no request).
What each revision answered is totalled here too (`VersionCounts`), for the canary's verdict.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from llmos.deploy._pick import Candidate, pick_replica
from llmos.deploy._routes import FrontReport, ReplicaReport, RouteSet
from llmos.deploy._split import Split, pick_revision, should_mirror
from llmos.deploy._version_figures import VersionCounts

__all__ = ["UNHEALTHY_AFTER", "Picked", "RouteNow", "RouteState", "RouteTable"]

# Probes in a row that must fail before a ready replica stops receiving requests: one slow
# answer on a busy machine is not a dead replica.
UNHEALTHY_AFTER = 3


@dataclass
class RouteState:
    replica_id: str
    port: int
    draining: bool = False
    host: str = "127.0.0.1"
    revision: str = ""
    ever_ready: bool = False
    healthy: bool = False
    probe_failures: int = 0
    outstanding: int = 0
    dispatched: int = 0
    # Load accounting on this process's monotonic clock: the integral of `outstanding` over time,
    # sampled by the probe loop, gives the mean outstanding over any recent window exactly.
    _area: float = 0.0
    _area_t: float = field(default_factory=time.monotonic)
    _area_samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=4096))
    _latencies: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=4096))

    @property
    def routable(self) -> bool:
        return self.healthy and not self.draining

    def _advance(self, now: float) -> None:
        self._area += self.outstanding * (now - self._area_t)
        self._area_t = now

    def sample(self, now: float) -> None:
        self._advance(now)
        self._area_samples.append((now, self._area))

    def mean_outstanding(self, now: float, window_s: float) -> float:
        self._advance(now)
        since = now - window_s
        start_t, start_area = next(((t, a) for t, a in self._area_samples if t >= since), (now, self._area))
        if now - start_t < 1e-3:
            return float(self.outstanding)
        return (self._area - start_area) / (now - start_t)

    def p95_ms(self, now: float, window_s: float) -> float | None:
        recent = sorted(s for t, s in self._latencies if t >= now - window_s)
        if not recent:
            return None
        return 1000 * recent[min(len(recent) - 1, math.ceil(0.95 * len(recent)) - 1)]


class RouteNow(NamedTuple):
    """One replica as the front sees it now (for the metrics)."""

    replica_id: str
    routable: bool
    outstanding: int


class Picked(NamedTuple):
    replica_id: str
    host: str
    port: int
    revision: str
    mirror: bool  # also send a copy to the current version and compare the labels


class RouteTable:
    def __init__(self, name: str = "", load_window_s: float = 5.0) -> None:
        self.lock = threading.Lock()
        self.name, self.load_window_s = name, load_window_s
        self._routes: dict[str, RouteState] = {}
        self.split: Split | None = None
        self._picks = 0  # requests picked under the current split: pick_revision's counter
        self._mirrorable = 0  # classify requests the canary took: should_mirror's counter
        self._versions: dict[str, VersionCounts] = {}

    # --- what the controller publishes ------------------------------------------------------------
    def apply(self, routes: RouteSet) -> None:
        """Take the controller's replica set: new replicas start as ready as the controller last knew
        them (a restarted front routes at once), known ones keep what this front's probes found,
        a drain is never undone, and replicas no longer listed are dropped (a request still in
        flight on one finishes; its release finds nothing to count)."""
        with self.lock:
            self.name, self.load_window_s = routes.name, routes.load_window_s
            if routes.split != self.split:
                self.split, self._picks, self._mirrorable = routes.split, 0, 0
            listed = {r.replica_id for r in routes.routes}
            for replica_id in set(self._routes) - listed:
                del self._routes[replica_id]
            for r in routes.routes:
                state = self._routes.get(r.replica_id)
                if state is None or (state.host, state.port) != (r.host, r.port):
                    state = self._routes[r.replica_id] = RouteState(r.replica_id, r.port, ever_ready=r.ready,
                                                                    healthy=r.ready, host=r.host)
                state.revision = r.revision
                state.draining = state.draining or r.draining

    def states(self) -> list[RouteNow]:
        with self.lock:
            return [RouteNow(r.replica_id, r.routable, r.outstanding) for r in self._routes.values()]

    def get(self, replica_id: str) -> RouteState | None:
        with self.lock:
            return self._routes.get(replica_id)

    def report(self, pid: int) -> FrontReport:
        with self.lock:
            now, window_s = time.monotonic(), self.load_window_s
            return FrontReport(pid, {r.replica_id: ReplicaReport(
                r.healthy, r.ever_ready, r.draining, r.outstanding, r.dispatched,
                r.mean_outstanding(now, window_s), r.p95_ms(now, window_s)) for r in self._routes.values()},
                {rev: VersionCounts(v.requests, v.errors, list(v.buckets), v.compared, v.differed)
                 for rev, v in self._versions.items()})

    # --- the request path -------------------------------------------------------------------------
    def acquire(self, exclude: frozenset[str]) -> tuple[str, str, int] | None:
        """Pick the least-loaded routable replica and count one request against it: (id, host, port)."""
        picked = self.acquire_routed(exclude)
        return None if picked is None else (picked.replica_id, picked.host, picked.port)

    def acquire_routed(self, exclude: frozenset[str], mirrorable: bool = False) -> Picked | None:
        """`acquire`, through the canary's split if there is one; `mirrorable`: a classify request,
        which the canary may have copied to the current version."""
        with self.lock:
            split, revision = self.split, None
            if split is not None:
                revision = pick_revision(split, self._picks)
                self._picks += 1
            chosen = self._least_loaded(exclude, revision) or self._least_loaded(exclude, None)
            if chosen is None:
                return None
            state = self._count(chosen)
            mirror = False
            if split is not None and mirrorable and state.revision == split.canary:
                mirror = should_mirror(split.mirror_fraction, self._mirrorable)
                self._mirrorable += 1
            return Picked(chosen, state.host, state.port, state.revision, mirror)

    def acquire_mirror(self) -> tuple[str, str, int] | None:
        """A replica of the split's current version for a mirrored copy (counted like a request)."""
        with self.lock:
            if self.split is None:
                return None
            chosen = self._least_loaded(frozenset(), self.split.stable)
            if chosen is None:
                return None
            state = self._count(chosen)
            return chosen, state.host, state.port

    def _least_loaded(self, exclude: frozenset[str], revision: str | None) -> str | None:
        return pick_replica((Candidate(r.replica_id, r.routable, r.outstanding, r.dispatched)
                             for r in self._routes.values() if revision is None or r.revision == revision), exclude)

    def _count(self, replica_id: str) -> RouteState:
        state = self._routes[replica_id]
        state._advance(time.monotonic())
        state.outstanding += 1
        state.dispatched += 1
        return state

    # --- per-revision totals ------------------------------------------------------------------------
    def answered(self, revision: str, status: int, latency_s: float) -> None:
        with self.lock:
            self._versions.setdefault(revision, VersionCounts()).answered(status, latency_s)

    def failed(self, revision: str) -> None:
        with self.lock:
            self._versions.setdefault(revision, VersionCounts()).failed()

    def versions(self) -> tuple[Split | None, dict[str, VersionCounts]]:
        """The split and each revision's totals (copies), for the metrics."""
        with self.lock:
            return self.split, {rev: VersionCounts(v.requests, v.errors, list(v.buckets), v.compared, v.differed)
                                for rev, v in self._versions.items()}

    def compared(self, revision: str, ours: list[str], theirs: list[str]) -> None:
        with self.lock:
            self._versions.setdefault(revision, VersionCounts()).compared_labels(ours, theirs)

    def release(self, replica_id: str, latency_s: float | None) -> None:
        with self.lock:
            state = self._routes.get(replica_id)
            if state is None:
                return
            now = time.monotonic()
            state._advance(now)
            state.outstanding -= 1
            if latency_s is not None:
                state._latencies.append((now, latency_s))

    # --- the probe loop ---------------------------------------------------------------------------
    def probe_targets(self) -> list[tuple[str, str, int]]:
        with self.lock:
            return [(r.replica_id, r.host, r.port) for r in self._routes.values()]

    def report_probe(self, replica_id: str, ok: bool) -> None:
        with self.lock:
            state = self._routes.get(replica_id)
            if state is None:
                return
            state.sample(time.monotonic())
            if ok:
                state.healthy, state.ever_ready, state.probe_failures = True, True, 0
                return
            state.probe_failures += 1
            if not state.ever_ready or state.probe_failures >= UNHEALTHY_AFTER:
                state.healthy = False

    def report_connect_failure(self, replica_id: str) -> None:
        """The replica refused a connection: stop routing to it until a probe says otherwise."""
        with self.lock:
            state = self._routes.get(replica_id)
            if state is not None:
                state.healthy = False
