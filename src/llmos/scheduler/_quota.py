"""Who may take capacity from whom: hard caps, guarantees, and fair-share entitlements.

- A hard cap is never exceeded.
- Above its guarantee an owner borrows idle capacity; a job that keeps its owner within its
  guarantee may reclaim it by preempting borrowers (Kueue's reclaimWithinCohort). An owner with
  no guarantee borrows everything it holds.
- With fair-share preemption, an owner below its entitlement (its weighted max-min fair share
  of the cluster, in dominant-share terms, among owners with work) may preempt jobs of owners
  that stay at or above their entitlement (and guarantee) without them. Each such preemption
  shrinks the total shortfall, so they cannot cycle; a job may take its owner past its
  entitlement, as otherwise an 8-GPU job could never close a 4-GPU gap.
Victims are never of a higher class than the job (strict classes), so the capacity taken
always goes to a job that the next round also considers first.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from llmos.scheduler._fairshare import entitlements
from llmos.scheduler._resources import ZERO, Resources
from llmos.scheduler._types import Job, Owner

__all__ = ["Quotas"]

_SLACK = 1e-6  # dominant shares are ratios of floats


class Quotas:
    def __init__(self, owners: Mapping[str, Owner], held: Mapping[str, Resources], total: Resources,
                 enabled: bool, fair: bool, waiting: Collection[str] = ()) -> None:
        self._owners = owners
        self._held = held  # the round's running tally, updated as it starts jobs
        self._total = total
        self._enabled = enabled
        self._entitled = _entitled(owners, held, total, waiting) if fair else None
        self._borrowing: dict[str, bool] = {}  # asked once per victim: remembered until `changed`

    def changed(self, name: str) -> None:
        """`name` now holds more (the round started or claimed a job for it)."""
        self._borrowing.pop(name, None)

    def under_cap(self, job: Job) -> bool:
        """Starting `job` keeps its owner within its hard cap."""
        owner = self._owners.get(job.owner) if self._enabled else None
        return owner is None or owner.cap.admits(self._held.get(job.owner, ZERO) + job.total)

    def within_guarantee(self, job: Job) -> bool:
        """`job` needs a guaranteed resource and fits within its owner's guarantee."""
        owner = self._owners.get(job.owner) if self._enabled else None
        if owner is None or not owner.guarantee.covers(job.total):
            return False
        return owner.guarantee.admits(self._held.get(job.owner, ZERO) + job.total)

    def below_entitlement(self, name: str) -> bool:
        """`name` holds less than its fair-share entitlement (when fair preemption is on)."""
        if self._entitled is None:
            return False
        return self._held.get(name, ZERO).dominant_share(self._total) < self._entitled.get(name, 0.0) - _SLACK

    def may_reclaim(self, job: Job) -> bool:
        return self.within_guarantee(job) or self.below_entitlement(job.owner)

    def borrowing(self, name: str) -> bool:
        """`name` holds more than its guarantee on some resource (or holds anything without one).

        Without quotas nobody is protected, so everybody counts as borrowing.
        """
        if not self._enabled:
            return True
        known = self._borrowing.get(name)
        if known is None:
            owner = self._owners.get(name)
            held = self._held.get(name, ZERO)
            unguarded = owner is None or not owner.guarantee.is_set()
            known = held != ZERO if unguarded else owner.guarantee.exceeded_by(held)
            self._borrowing[name] = known
        return known

    def excess(self, name: str) -> float:
        """How much dominant share `name` could lose and stay at its entitlement."""
        if self._entitled is None:
            return 0.0
        return self._held.get(name, ZERO).dominant_share(self._total) - self._entitled.get(name, 0.0)

    def reclaimable_from(self, job: Job, victim_owner: str) -> bool:
        """May `job` take capacity held by `victim_owner` (classes and amounts aside)?"""
        if victim_owner == job.owner or not self.borrowing(victim_owner):
            return False
        return self.within_guarantee(job) or (self.below_entitlement(job.owner) and self.excess(victim_owner) > 0)


def _entitled(owners: Mapping[str, Owner], held: Mapping[str, Resources], total: Resources,
              waiting: Collection[str]) -> dict[str, float]:
    """Each owner's max-min fair dominant share: owners with waiting work could use the whole
    cluster, the others exactly what they hold."""
    names = set(held) | set(waiting)
    demand = {o: 1.0 if o in waiting else held.get(o, ZERO).dominant_share(total) for o in names}
    weights = {o: owners[o].weight if o in owners else 1.0 for o in names}
    return entitlements(demand, weights, 1.0)
