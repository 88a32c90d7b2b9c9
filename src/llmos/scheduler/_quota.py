"""Quotas: a hard cap an owner never exceeds, and a guarantee it can always get back.

Above its guarantee an owner borrows idle capacity; an owner whose next job keeps it within
its guarantee may reclaim that capacity by preempting borrowers (as Kueue's reclaimWithinCohort).
An owner with no guarantee borrows everything it holds.
"""

from __future__ import annotations

from collections.abc import Mapping

from llmos.scheduler._resources import ZERO, Resources
from llmos.scheduler._types import Job, Owner

__all__ = ["Quotas"]


class Quotas:
    def __init__(self, owners: Mapping[str, Owner], held: Mapping[str, Resources], enabled: bool) -> None:
        self._owners = owners
        self._held = held  # the round's running tally, updated as it starts jobs
        self._enabled = enabled

    def under_cap(self, job: Job) -> bool:
        """Starting `job` keeps its owner within its hard cap."""
        owner = self._owners.get(job.owner) if self._enabled else None
        return owner is None or owner.cap.admits(self._held.get(job.owner, ZERO) + job.total)

    def may_reclaim(self, job: Job) -> bool:
        """`job` needs a guaranteed resource and fits within its owner's guarantee."""
        owner = self._owners.get(job.owner) if self._enabled else None
        if owner is None or not owner.guarantee.covers(job.total):
            return False
        return owner.guarantee.admits(self._held.get(job.owner, ZERO) + job.total)

    def borrowing(self, name: str) -> bool:
        """`name` holds more than its guarantee on some resource (or holds anything without one)."""
        owner = self._owners.get(name)
        held = self._held.get(name, ZERO)
        if owner is None or not owner.guarantee.is_set():
            return held != ZERO
        return owner.guarantee.exceeded_by(held)
