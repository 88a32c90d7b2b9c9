"""The replica table the front router and the controller share, behind one lock.

The router thread picks a replica and counts the request against it in one step (so a replica
that the controller takes out of routing never receives a request after its drain began); the
controller reads load and readiness from here and changes phases. Critical sections are a few
field updates: the lock is never held across I/O.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from llmos.deploy._pick import Candidate, pick_replica
from llmos.deploy._process import ProcHandle

__all__ = ["ReplicaRecord", "ReplicaTable"]

# Probes in a row that must fail before a ready replica stops receiving requests: one slow
# answer on a busy machine is not a dead replica.
UNHEALTHY_AFTER = 3


@dataclass
class ReplicaRecord:
    replica_id: str
    revision: str  # pinned model version + settings digest, e.g. "sentiment/3#1a2b3c4d"
    port: int
    proc: ProcHandle
    started_s: float | None  # on the controller's clock; None until the first tick sees it
    draining: bool = False
    ever_ready: bool = False
    healthy: bool = False
    probe_failures: int = 0
    outstanding: int = 0
    dispatched: int = 0
    drain_started_s: float | None = None
    term_sent_s: float | None = None
    unhealthy_since_s: float | None = None
    # load accounting on the router's monotonic clock: the integral of `outstanding` over time,
    # sampled by the probe loop, gives the mean outstanding over any recent window exactly.
    _area: float = 0.0
    _area_t: float = field(default_factory=time.monotonic)
    _area_samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=4096))
    _latencies: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=4096))

    @property
    def phase(self) -> str:
        return "draining" if self.draining else "ready" if self.ever_ready else "starting"

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


class ReplicaTable:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._replicas: dict[str, ReplicaRecord] = {}

    # --- the controller's side -------------------------------------------------------------------
    def add(self, record: ReplicaRecord) -> None:
        with self.lock:
            self._replicas[record.replica_id] = record

    def remove(self, replica_id: str) -> None:
        with self.lock:
            self._replicas.pop(replica_id, None)

    def records(self) -> list[ReplicaRecord]:
        with self.lock:
            return list(self._replicas.values())

    def get(self, replica_id: str) -> ReplicaRecord | None:
        with self.lock:
            return self._replicas.get(replica_id)

    def loads(self, window_s: float) -> dict[str, tuple[float, float | None]]:
        """Per replica: mean outstanding requests and p95 latency (ms) over the last `window_s`."""
        with self.lock:
            now = time.monotonic()
            return {r.replica_id: (r.mean_outstanding(now, window_s), r.p95_ms(now, window_s))
                    for r in self._replicas.values()}

    def begin_drain(self, replica_id: str, now: float | None) -> None:
        with self.lock:
            record = self._replicas.get(replica_id)
            if record is not None and not record.draining:
                record.draining, record.drain_started_s = True, now

    # --- the router's side -----------------------------------------------------------------------
    def acquire(self, exclude: frozenset[str]) -> tuple[str, int] | None:
        """Pick the least-loaded routable replica and count one request against it."""
        with self.lock:
            candidates = [Candidate(r.replica_id, r.routable, r.outstanding, r.dispatched)
                          for r in self._replicas.values()]
            chosen = pick_replica(candidates, exclude)
            if chosen is None:
                return None
            record = self._replicas[chosen]
            record._advance(time.monotonic())
            record.outstanding += 1
            record.dispatched += 1
            return chosen, record.port

    def release(self, replica_id: str, latency_s: float | None) -> None:
        with self.lock:
            record = self._replicas.get(replica_id)
            if record is None:
                return
            now = time.monotonic()
            record._advance(now)
            record.outstanding -= 1
            if latency_s is not None:
                record._latencies.append((now, latency_s))

    def probe_targets(self) -> list[tuple[str, int]]:
        with self.lock:
            return [(r.replica_id, r.port) for r in self._replicas.values()]

    def report_probe(self, replica_id: str, ok: bool) -> None:
        with self.lock:
            record = self._replicas.get(replica_id)
            if record is None:
                return
            record.sample(time.monotonic())
            if ok:
                record.healthy, record.ever_ready, record.probe_failures = True, True, 0
                return
            record.probe_failures += 1
            if not record.ever_ready or record.probe_failures >= UNHEALTHY_AFTER:
                record.healthy = False

    def report_connect_failure(self, replica_id: str) -> None:
        """The replica refused a connection: stop routing to it until a probe says otherwise."""
        with self.lock:
            record = self._replicas.get(replica_id)
            if record is not None:
                record.healthy = False
