"""Prometheus metrics of the control plane, served at `/metrics`.

Most series are read from the state database and the inventory when Prometheus scrapes (one
collector, three small grouped queries): they are never stale and no code path has to remember to
count. Two things are not stored anywhere and are observed as they happen: how long a scheduling
round takes and how many jobs it preempts. The loop reports both with `observe_round`.

Labels hold only priority classes, project names, job states, resources and node names: never a
job's name, spec, owner token, path or command line (the endpoint needs no token; see
docs/control-plane.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import func, select

from llmos.control._db import read
from llmos.control._schema import jobs
from llmos.control._states import JobState

if TYPE_CHECKING:
    from llmos.control._service import Service

__all__ = ["ControlCollector", "observe_round", "registry_for", "render"]

# A round is a pure decision over a snapshot plus a few writes: milliseconds on one machine, more
# with thousands of queued jobs or a remote PostgreSQL.
ROUND_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RESOURCES = ("cpus", "memory_gb", "gpus")

# Process-wide: one control loop per daemon process.
_EVENTS = CollectorRegistry()
_ROUND = Histogram("llmos_scheduler_round_seconds", "time one scheduling round takes (snapshot, decide, act)",
                   buckets=ROUND_BUCKETS_S, registry=_EVENTS)
_PREEMPTIONS = Counter("llmos_scheduler_preemptions", "jobs the scheduler asked to stop for higher-class work",
                       registry=_EVENTS)


def observe_round(seconds: float, preempts: int = 0) -> None:
    """Record one scheduling round: its duration and the jobs it preempted."""
    _ROUND.observe(max(0.0, seconds))
    if preempts > 0:
        _PREEMPTIONS.inc(preempts)


class ControlCollector:
    """Queue, job states and allocation vs capacity, read from the database on each scrape."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from llmos.scheduler import PRIORITY_CLASSES

        class_of = {rank: name for name, rank in PRIORITY_CLASSES.items()}
        with read(self._service.engine) as conn:
            queued = conn.execute(select(jobs.c.priority, jobs.c.project, func.count())
                                  .where(jobs.c.state == JobState.QUEUED)
                                  .group_by(jobs.c.priority, jobs.c.project)).all()
            states = dict(conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)).all())
            holding = conn.execute(select(jobs.c.placement).where(jobs.c.holds.is_(True))).all()
        queue = GaugeMetricFamily("llmos_queue_length", "queued jobs by priority class and project",
                                  labels=["class", "project"])
        for rank, project, n in queued:
            queue.add_metric([class_of.get(rank, str(rank)), project], n)
        yield queue
        by_state = GaugeMetricFamily("llmos_jobs", "jobs by state (every job the database holds)", labels=["state"])
        for state in JobState:
            by_state.add_metric([state.value], states.get(state.value, 0))
        yield by_state
        yield from self._allocation([row.placement for row in holding])

    def _allocation(self, placements: list[str | None]) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from llmos.executor import NODE

        cluster = self._service.hosts()
        capacity = {h.name: {"cpus": float(len(h.cores)), "memory_gb": h.memory_gb, "gpus": float(len(h.gpus))}
                    for h in cluster.hosts}
        held = {name: dict.fromkeys(RESOURCES, 0.0) for name in capacity}
        for text in placements:
            for worker in json.loads(text)["workers"] if text else ():
                use = held.setdefault(worker.get("node", NODE), dict.fromkeys(RESOURCES, 0.0))
                use["cpus"] += len(worker["cores"])
                use["memory_gb"] += worker["memory_gb"]
                use["gpus"] += len(worker["gpus"])
        deployments = self._service.deployments
        for replica in deployments.holders() if deployments is not None else ():
            use = held.setdefault(replica.get("node", NODE), dict.fromkeys(RESOURCES, 0.0))
            use["cpus"] += len(replica["cores"])
            use["memory_gb"] += replica["memory_gb"]
            use["gpus"] += len(replica["gpus"])
        cap = GaugeMetricFamily("llmos_capacity", "what the scheduler may hand out, per node and resource",
                                labels=["node", "resource"])
        alloc = GaugeMetricFamily("llmos_allocated", "what running jobs and deployment replicas hold, per node "
                                  "and resource", labels=["node", "resource"])
        for node in sorted(held):
            for resource in RESOURCES:
                if node in capacity:
                    cap.add_metric([node, resource], capacity[node][resource])
                alloc.add_metric([node, resource], held[node][resource])
        yield cap
        yield alloc


def registry_for(service: Service) -> CollectorRegistry:
    """A registry with the database collector of `service` (one per app)."""
    registry = CollectorRegistry()
    registry.register(ControlCollector(service))
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of `registry` (the app's collector) and of the loop's events."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry) + generate_latest(_EVENTS), CONTENT_TYPE_LATEST
