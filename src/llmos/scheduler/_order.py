"""The order in which a round considers queued jobs, produced lazily.

Within a (class, owner) group jobs keep queue order, so only the group heads compete: a heap of
heads yields the next job in O(log groups) and a round that stops early never touches the
rest of a 10,000-job queue. The key of a head is

    (-class,  beyond,  standing(owner) - waited / aging_s,  submit_s, job_id)

Classes are strict. Within a class, jobs that keep their owner within its guarantee or fair
share come before jobs that would take it beyond (otherwise capacity reclaimed for an owner
would go straight back to the job it was taken from). Then the owner furthest below its share
goes first: its DRF standing (dominant share now plus some of its decayed usage) over its
entitlement, the weighted max-min fair share of its demand (see `_owed`). Dividing by the
entitlement rather than the bare weight makes an owner with 3 of its 4 entitled GPUs wait
behind one with 10 of 20, where plain DRF would send the small owner first and leave the big
one below its share for as long as the small one has work. Waiting lowers the key (aging)
until even a job of a heavy user is first within its class. `waited` is time spent in the queue
(`Job.waited_s` plus this stay): a preempted job keeps its place (`submit_s`) but not credit for
the time it ran, or it would outrank the job it was preempted for and take the freed capacity
straight back, a checkpoint for nothing.
When an owner's holdings change mid-round (it started a job) its heads are re-keyed lazily;
keys only grow within a round, so a stale entry is always popped early and re-keyed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence

from llmos.scheduler._config import PolicyConfig
from llmos.scheduler._snapshot import QueueKey
from llmos.scheduler._types import Job

__all__ = ["QueueOrder"]


class QueueOrder:
    def __init__(self, queue: Mapping[QueueKey, Sequence[Job]], now_s: float, config: PolicyConfig,
                 standing: dict[str, float], within: Callable[[Job], bool] | None) -> None:
        self._within = within
        self._now_s = now_s
        self._classes = config.priority_classes
        self._fair = config.fair_share
        self._aging_s = config.aging_s
        self._standing = standing
        self._version: dict[str, int] = {}
        self._dropped: set[str] = set()
        self._heap = [self._entry(key, 0, 0, jobs) for key, jobs in queue.items() if jobs]
        heapq.heapify(self._heap)

    def _entry(self, group: QueueKey, pos: int, version: int, jobs: Sequence[Job]) -> tuple:
        """The heap entry of `jobs[pos]`, the head of `group`: its key, then where it is.

        The key (class, beyond, standing, submit_s, job_id) is laid out flat, with class and
        beyond folded into one rank (2 x -class + beyond, the same order), because a pop
        compares a dozen entries and flat ones compare in a few steps. Keys end with the job
        id, so no two are equal and the rest of an entry is never compared.
        """
        job = jobs[pos]
        within = self._within
        rank = -2 * group[0] if self._classes else 0
        if within is not None and not within(job):
            rank += 1
        submit_s = job.submit_s
        if not self._fair:
            return (rank, 0.0, submit_s, job.job_id, group, pos, version, jobs)
        standing = self._standing.get(group[1], 0.0)
        aging_s = self._aging_s
        if aging_s is not None:
            standing -= job.waited_by(self._now_s) / aging_s
        return (rank, standing, submit_s, job.job_id, group, pos, version, jobs)

    def pop(self) -> Job | None:
        """The next job in policy order, or None when the queue is exhausted."""
        heap = self._heap
        while heap:
            _, _, _, _, group, pos, version, jobs = heap[0]
            owner = group[1]
            if owner in self._dropped:
                heapq.heappop(heap)
                continue
            current = self._version.get(owner, 0)
            # The head's successor (or the head re-keyed) takes its place: one sift, not two.
            if version != current:
                heapq.heapreplace(heap, self._entry(group, pos, current, jobs))
                continue
            if pos + 1 < len(jobs):
                heapq.heapreplace(heap, self._entry(group, pos + 1, current, jobs))
            else:
                heapq.heappop(heap)
            return jobs[pos]
        return None

    def restand(self, owner: str) -> None:
        """`owner` holds more than before: its heads are re-keyed when next popped."""
        self._version[owner] = self._version.get(owner, 0) + 1

    def drop(self, owner: str) -> None:
        """Skip `owner`'s remaining jobs this round (it reached its hard cap)."""
        self._dropped.add(owner)
