"""Pure translations between stored jobs and the scheduler: snapshot in, concrete cores out.

The scheduler counts CPUs; the executor pins processes to core ids. `assign_cores` picks the
ids for a start from those no holding job uses on the chosen host, so two jobs never share a core.
A placement names each worker's host (`node`, absent in placements written before cluster mode:
the local host) and its address.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from llmos.control._states import JobState
from llmos.executor import NODE, Cluster, Inventory
from llmos.scheduler import Job, Owner, Resources, RunningJob, Slot, Snapshot

__all__ = ["assign_cores", "build_snapshot", "sched_job", "used_cores", "waited_before"]


def sched_job(row: Any, waited_s: float | None = None) -> Job:
    """The scheduler's view of a stored job row (`project` is the fair-share owner).

    `waited_s`, for a queued row: what it waited in the queue before this stay (see
    `waited_before`); its current stay began when it entered QUEUED (`updated_s`)."""
    queued = {} if waited_s is None else {"queued_s": max(row.updated_s, row.submit_s), "waited_s": waited_s}
    return Job(job_id=str(row.id), owner=row.project, submit_s=row.submit_s,
               per_worker=Resources(float(row.cpus), float(row.memory_gb), float(row.gpus)), workers=row.workers,
               priority=row.priority, same_node=bool(row.same_node), **queued)


def waited_before(submit_s: float, attempts: Iterable[tuple[float, float | None]]) -> float:
    """Seconds a job spent queued before its current stay: from submission to its first start and
    from the end of each attempt to the next start (`attempts`: (started_s, ended_s) in order)."""
    waited, since = 0.0, submit_s
    for started_s, ended_s in attempts:
        waited += max(started_s - since, 0.0)
        since = started_s if ended_s is None else ended_s
    return waited


def build_snapshot(now_s: float, cluster: Cluster | Inventory, queued: Iterable[Any], holding: Iterable[Any],
                   grace_s: float, extra: Iterable[RunningJob] = (), usage: Mapping[str, Resources] | None = None,
                   owed: Mapping[str, float] | None = None, waiting: Iterable[Job] = (),
                   waited: Mapping[int, float] | None = None, owners: Iterable[Owner] = ()) -> Snapshot:
    """The snapshot the policy reads: queued rows, rows holding a placement, `extra` holders
    (deployment replicas) and `waiting` queued extras (replicas waiting for room). `waited` is
    each requeued row's earlier time in the queue (absent: none), for aging. `owners` are the
    projects' weights, guarantees and caps (a project not among them: weight 1, no limits).

    A job asked to stop holds its placement until its processes exit, and is marked `stopping`:
    the policy counts what it holds as capacity being freed, which the demand that preempted it
    claims on later rounds, so one demand preempts one set of victims, not a new set every round.
    """
    running = [_running(row, now_s, grace_s) for row in holding]
    waited = waited or {}
    hosts = cluster if isinstance(cluster, Cluster) else Cluster.of(cluster)
    return Snapshot.build(now_s, hosts.for_scheduler, [*running, *extra],
                          [*(sched_job(r, waited.get(r.id, 0.0)) for r in queued), *waiting],
                          owners=owners, usage=usage, owed=owed)


def _running(row: Any, now_s: float, grace_s: float) -> RunningJob:
    placement = json.loads(row.placement)
    slots = tuple(Slot(w.get("node", NODE), float(len(w["cores"])), w["memory_gb"], tuple(w["gpu_slots"]))
                  for w in placement["workers"])
    stopping = row.stop_s is not None or row.state in (JobState.PREEMPTED, JobState.CANCELLED)
    end = (row.stop_s or now_s) + grace_s if stopping else None
    return RunningJob(sched_job(row), slots, row.updated_s, stopping=stopping, expected_end_s=end)


def used_cores(placements: Iterable[str | None]) -> dict[str, set[int]]:
    """The core ids each host's holders use (host name -> ids)."""
    used: dict[str, set[int]] = {}
    for text in placements:
        if text:
            for worker in json.loads(text)["workers"]:
                used.setdefault(worker.get("node", NODE), set()).update(worker["cores"])
    return used


def assign_cores(slots: Iterable[Slot], cluster: Cluster, used: dict[str, set[int]]) -> dict[str, Any]:
    """Concrete cores and GPUs for a start: whole cores per worker, lowest free ids of its host first.

    `gpu_slots` are the scheduler's GPU numbers (0..n-1 over the host's exposed GPUs); `gpus` the
    physical indices that go into CUDA_VISIBLE_DEVICES. Updates `used` with what it hands out.
    """
    workers = []
    for slot in slots:
        host = cluster.host(slot.node)
        if host is None:
            raise RuntimeError(f"placement on node {slot.node!r}, which is not in the inventory")
        taken = used.setdefault(host.name, set())
        free = [c for c in host.cores if c not in taken]
        n = max(1, math.ceil(slot.cpus - 1e-9))
        if len(free) < n:
            raise RuntimeError(f"placement needs {n} more cores on {host.name} but only {free} are free: holders "
                               "disagree with the scheduler's free capacity")
        taken.update(free[:n])
        workers.append({"node": host.name, "address": host.address, "cores": free[:n], "memory_gb": slot.memory_gb,
                        "gpu_slots": list(slot.gpu_indices), "gpus": [host.gpus[i].index for i in slot.gpu_indices]})
    return {"workers": workers}
