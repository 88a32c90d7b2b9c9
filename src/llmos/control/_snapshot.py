"""Pure translations between stored jobs and the scheduler: snapshot in, concrete cores out.

The scheduler counts CPUs; the executor pins processes to core ids. `assign_cores` picks the
ids for a start from those no holding job uses, so two jobs never share a core.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from llmos.control._inventory import NODE, Inventory
from llmos.control._states import JobState
from llmos.scheduler import Job, Resources, RunningJob, Slot, Snapshot

__all__ = ["assign_cores", "build_snapshot", "sched_job", "used_cores", "waited_before"]


def sched_job(row: Any, waited_s: float | None = None) -> Job:
    """The scheduler's view of a stored job row (`project` is the fair-share owner).

    `waited_s`, for a queued row: what it waited in the queue before this stay (see
    `waited_before`); its current stay began when it entered QUEUED (`updated_s`)."""
    queued = {} if waited_s is None else {"queued_s": max(row.updated_s, row.submit_s), "waited_s": waited_s}
    return Job(job_id=str(row.id), owner=row.project, submit_s=row.submit_s,
               per_worker=Resources(float(row.cpus), float(row.memory_gb), float(row.gpus)), workers=row.workers,
               priority=row.priority, same_node=True, **queued)


def waited_before(submit_s: float, attempts: Iterable[tuple[float, float | None]]) -> float:
    """Seconds a job spent queued before its current stay: from submission to its first start and
    from the end of each attempt to the next start (`attempts`: (started_s, ended_s) in order)."""
    waited, since = 0.0, submit_s
    for started_s, ended_s in attempts:
        waited += max(started_s - since, 0.0)
        since = started_s if ended_s is None else ended_s
    return waited


def build_snapshot(now_s: float, inventory: Inventory, queued: Iterable[Any], holding: Iterable[Any],
                   grace_s: float, extra: Iterable[RunningJob] = (), usage: Mapping[str, Resources] | None = None,
                   owed: Mapping[str, float] | None = None, waiting: Iterable[Job] = (),
                   waited: Mapping[int, float] | None = None) -> Snapshot:
    """The snapshot the policy reads: queued rows, rows holding a placement, `extra` holders
    (deployment replicas) and `waiting` queued extras (replicas waiting for room). `waited` is
    each requeued row's earlier time in the queue (absent: none), for aging.

    A job asked to stop holds its placement until its processes exit, and is marked `stopping`:
    the policy counts what it holds as capacity being freed, which the demand that preempted it
    claims on later rounds, so one demand preempts one set of victims, not a new set every round.
    """
    running = [_running(row, now_s, grace_s) for row in holding]
    waited = waited or {}
    return Snapshot.build(now_s, [inventory.node()], [*running, *extra],
                          [*(sched_job(r, waited.get(r.id, 0.0)) for r in queued), *waiting],
                          usage=usage, owed=owed)


def _running(row: Any, now_s: float, grace_s: float) -> RunningJob:
    placement = json.loads(row.placement)
    slots = tuple(Slot(NODE, float(len(w["cores"])), w["memory_gb"], tuple(w["gpu_slots"]))
                  for w in placement["workers"])
    stopping = row.stop_s is not None or row.state in (JobState.PREEMPTED, JobState.CANCELLED)
    end = (row.stop_s or now_s) + grace_s if stopping else None
    return RunningJob(sched_job(row), slots, row.updated_s, stopping=stopping, expected_end_s=end)


def used_cores(placements: Iterable[str | None]) -> set[int]:
    used: set[int] = set()
    for text in placements:
        if text:
            for worker in json.loads(text)["workers"]:
                used.update(worker["cores"])
    return used


def assign_cores(slots: Iterable[Slot], inventory: Inventory, used: set[int]) -> dict[str, Any]:
    """Concrete cores and GPUs for a start: whole cores per worker, lowest free ids first.

    `gpu_slots` are the scheduler's GPU numbers (0..n-1 over the exposed GPUs); `gpus` the
    physical indices that go into CUDA_VISIBLE_DEVICES.
    """
    free = [c for c in inventory.cores if c not in used]
    workers = []
    for slot in slots:
        n = max(1, math.ceil(slot.cpus - 1e-9))
        if len(free) < n:
            raise RuntimeError(f"placement needs {n} more cores but only {free} are free: holders disagree "
                               "with the scheduler's free capacity")
        cores, free = free[:n], free[n:]
        workers.append({"cores": cores, "memory_gb": slot.memory_gb, "gpu_slots": list(slot.gpu_indices),
                        "gpus": [inventory.gpus[i].index for i in slot.gpu_indices]})
    return {"workers": workers}
