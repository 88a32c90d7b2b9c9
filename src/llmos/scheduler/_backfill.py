"""EASY backfill: one reservation for the first blocked job, which later jobs must not delay.

The reservation replays running jobs ending in order of their expected end until the blocked
job fits: that moment is its shadow time, and that placement its nodes. A later job may start
now if it fits and either (a) its estimate says it ends before the shadow time, or (b) it
leaves alone what the blocked job will need on those nodes (the holds). Jobs without an
end estimate never end in this replay, and when the shadow time depends on one it is infinite,
so only rule (b) applies: conservative when there are no estimates. Capacity being freed by
checkpointing jobs counts as free now, which can only make the shadow earlier and the holds
larger, never the reverse.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Iterator, Sequence
from operator import attrgetter

from llmos.scheduler._free import FreeView
from llmos.scheduler._placement import Placement, place
from llmos.scheduler._types import Job, RunningJob

__all__ = ["reserve"]

_FIRST = 64
_END = attrgetter("end_s")


def reserve(view: FreeView, future: FreeView, job: Job, running: Sequence[RunningJob],
            begun: Sequence[RunningJob], preempted: Collection[str], now_s: float,
            index: dict[str, int], ordered: bool = False) -> float | None:
    """Set holds on `view` for `job` and return its shadow time; None if it never fits.

    `future` (a scratch copy: free now plus capacity being freed) is consumed. `running` are
    the snapshot's jobs (stopping ones and those in `preempted` are already in `future`),
    `begun` the jobs this round started or claimed; `ordered`: `running` is already in end-time order.
    """
    shadow = now_s
    placement = place(future, job)
    if placement is None:
        for end_s, rj in _by_end(running, begun, preempted, now_s, ordered):
            for slot in rj.placement:
                future.give(index[slot.node], slot.cpus, slot.memory_gb, slot.gpu_indices)
            if job.total.gpus <= future.free_gpus and (placement := place(future, job)) is not None:
                shadow = end_s
                break
        if placement is None:
            return None
    _hold(view, future, placement, index)
    return shadow


def _by_end(running: Sequence[RunningJob], begun: Sequence[RunningJob], preempted: Collection[str],
            now_s: float, ordered: bool = False) -> Iterator[tuple[float, RunningJob]]:
    """Jobs in the order their resources come back; a job past its estimate has shown the
    estimate wrong, so it comes back at an unknown (infinite) time, after all the others."""
    overdue = []
    jobs = _merged(running, sorted(begun, key=_END)) if ordered else _sorted_lazily([*running, *begun])
    for rj in jobs:
        if rj.stopping or rj.job.job_id in preempted:
            continue
        if rj.end_s <= now_s:
            overdue.append(rj)
        elif rj.end_s == math.inf:
            yield from ((math.inf, late) for late in overdue)
            overdue = []
            yield math.inf, rj
        else:
            yield rj.end_s, rj
    yield from ((math.inf, late) for late in overdue)


def _merged(running: Sequence[RunningJob], begun: list[RunningJob]) -> Iterator[RunningJob]:
    """Two end-time orders merged, `running` first among equals (as `heapq.merge` would, with
    less work per job: `begun` holds a few jobs, `running` thousands)."""
    k = 0
    for rj in running:
        while k < len(begun) and begun[k].end_s < rj.end_s:
            yield begun[k]
            k += 1
        yield rj
    yield from begun[k:]


def _sorted_lazily(jobs: list[RunningJob]) -> Iterator[RunningJob]:
    """By end time; the walk usually stops within the first few, so sort the rest only if needed."""
    first = heapq.nsmallest(_FIRST, jobs, key=_END)  # documented equal to sorted(...)[:n]
    yield from first
    if len(first) == _FIRST:
        yield from sorted(jobs, key=_END)[_FIRST:]


def _hold(view: FreeView, future: FreeView, placement: Placement, index: dict[str, int]) -> None:
    """Set aside on `view` what the reserved job needs beyond what will be released for it."""
    need: dict[int, list[float]] = {}
    for slot in placement:
        acc = need.setdefault(index[slot.node], [0.0, 0.0, 0])
        acc[0] += slot.cpus
        acc[1] += slot.memory_gb
        acc[2] += len(slot.gpu_indices)
    for i, (c, m, g) in need.items():
        released_c = future.cpus[i] - view.cpus[i]
        released_m = future.mem[i] - view.mem[i]
        released_g = len(future.gpus[i]) - len(view.gpus[i])
        view.hold(i, min(max(c - released_c, 0.0), view.cpus[i]), min(max(m - released_m, 0.0), view.mem[i]),
                  min(max(g - released_g, 0), len(view.gpus[i])))
