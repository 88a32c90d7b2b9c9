"""Prometheus metrics of a deployment's front router, served by the front at `GET /metrics`.

Per replica: requests and the status each answered, latency to the response headers (a
histogram), and what failed at the front (a replica refused the connection or broke it before
answering; 503 when no replica was ready; 502 when retries ran out). Readiness and requests in
flight are read from the route table when Prometheus scrapes. A replica's series go away with
it (when the controller drops it from the replica set): replica ids are never reused, and a long
rolling history would otherwise grow every scrape.

Per revision (model version + settings digest), for canaries: requests, failures, mirrored
answers compared and those whose label differed, and each revision's share while a split runs.

Labels hold replica ids, revisions, status codes and failure kinds only: never a path, a header or
a body.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from llmos.deploy._route_table import RouteTable

__all__ = ["LATENCY_BUCKETS_S", "FrontMetrics"]

# The replicas' own buckets (llmos.serve), so the two histograms line up on one dashboard.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
NO_REPLICA = ""  # the replica label of a request no replica could take (503)


@dataclass
class _Replica:
    answered: Counter[str] = field(default_factory=Counter)  # status code -> requests
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))  # last: +Inf
    latency_sum_s: float = 0.0
    failed: Counter[str] = field(default_factory=Counter)  # failure kind -> requests


class FrontMetrics:
    """What the router observed per replica, plus the route table's state, as one collector."""

    def __init__(self, table: RouteTable) -> None:
        from prometheus_client import CollectorRegistry

        self._table = table
        self._lock = threading.Lock()
        self._replicas: dict[str, _Replica] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def answered(self, replica_id: str, status: int, latency_s: float) -> None:
        """A replica answered with `status` after `latency_s` (to its response headers)."""
        with self._lock:
            stats = self._replicas.setdefault(replica_id, _Replica())
            stats.answered[str(status)] += 1
            stats.buckets[bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
            stats.latency_sum_s += latency_s

    def failed(self, replica_id: str, kind: str) -> None:
        """A request failed at the front: `connect`, `no_response` (then maybe retried elsewhere),
        `bad_gateway` (502 to the client) or `unavailable` (503, `replica_id` NO_REPLICA)."""
        with self._lock:
            self._replicas.setdefault(replica_id, _Replica()).failed[kind] += 1

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        states = self._table.states()
        with self._lock:
            listed = {s.replica_id for s in states} | {NO_REPLICA}
            for gone in set(self._replicas) - listed:
                del self._replicas[gone]
            stats = sorted(self._replicas.items())
            requests = CounterMetricFamily("llmos_front_requests", "requests a replica answered, by the status "
                                           "it answered", labels=["replica", "status"])
            latency = HistogramMetricFamily("llmos_front_request_latency_seconds", "time from forwarding a request "
                                            "to the replica's response headers", labels=["replica"])
            errors = CounterMetricFamily("llmos_front_errors", "requests that failed at the front, by kind: "
                                         "connect, no_response, bad_gateway (502), unavailable (503)",
                                         labels=["replica", "kind"])
            for replica_id, s in stats:
                for status, n in sorted(s.answered.items()):
                    requests.add_metric([replica_id, status], n)
                if sum(s.buckets):
                    latency.add_metric([replica_id], _cumulative(s.buckets), s.latency_sum_s)
                for kind, n in sorted(s.failed.items()):
                    errors.add_metric([replica_id, kind], n)
        ready = GaugeMetricFamily("llmos_front_replica_ready", "1 while the front routes to the replica "
                                  "(ready and not draining)", labels=["replica"])
        outstanding = GaugeMetricFamily("llmos_front_replica_outstanding", "requests in flight on the replica",
                                        labels=["replica"])
        for s in states:
            ready.add_metric([s.replica_id], float(s.routable))
            outstanding.add_metric([s.replica_id], float(s.outstanding))
        yield from (requests, latency, errors, ready, outstanding)
        yield from _version_families(self._table)


def _version_families(table: RouteTable) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    split, versions = table.versions()
    families = {
        "requests": CounterMetricFamily("llmos_front_version_requests", "requests per model revision "
                                        "(answered or failed at the front)", labels=["revision"]),
        "errors": CounterMetricFamily("llmos_front_version_errors", "requests per model revision that failed: "
                                      "5xx, or no answer", labels=["revision"]),
        "compared": CounterMetricFamily("llmos_front_version_compared", "a canary's answers compared with the "
                                        "current version's (mirrored classify requests, per input)",
                                        labels=["revision"]),
        "differed": CounterMetricFamily("llmos_front_version_differed", "compared answers whose label differed "
                                        "from the current version's", labels=["revision"]),
    }
    for revision, counts in sorted(versions.items()):
        for name, family in families.items():
            family.add_metric([revision], float(getattr(counts, name)))
    share = GaugeMetricFamily("llmos_front_version_share", "the share of requests a canary's split sends to "
                              "each revision (absent while no canary runs)", labels=["revision"])
    if split is not None:
        share.add_metric([split.canary], split.canary_weight)
        share.add_metric([split.stable], 1.0 - split.canary_weight)
    yield from (*families.values(), share)


def _cumulative(buckets: list[int]) -> list[tuple[str, float]]:
    out, total = [], 0
    for bound, n in zip((*(repr(b) for b in LATENCY_BUCKETS_S), "+Inf"), buckets, strict=True):
        total += n
        out.append((bound, float(total)))
    return out
