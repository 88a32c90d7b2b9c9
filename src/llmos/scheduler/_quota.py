"""Who may take capacity from whom: hard caps, guarantees, and fair-share entitlements.

- A hard cap is never exceeded.
- Above its guarantee an owner borrows idle capacity; a job that keeps its owner within its
  guarantee may reclaim it by preempting borrowers (Kueue's reclaimWithinCohort). An owner with
  no guarantee borrows everything it holds.
- With fair-share preemption, an owner A below its entitlement (strict classes, then weighted
  max-min fair within a class, in dominant-share terms, of each owner's demand: what it holds
  plus what it has queued; moved by what it is owed, see `_owed`) may preempt jobs of an owner
  B as long as B keeps more of its entitlement than A has now:
  held_B' / entitled_B > held_A / entitled_A. Each such preemption raises the smallest of the
  two ratios, so the sorted vector of ratios only improves and preemptions cannot cycle. A job
  may take its owner past its entitlement: otherwise an 8-GPU job could never close a 4-GPU gap.
  The bound holds for the set a plan preempts (see `_victims.Victims`).
  Jobs that (re)started within `settle_s` are not taken, so nothing bounces between owners,
  unless B stays above its entitlement without them (`surplus`): then B cannot reclaim them.
Victims are never of a higher class than the job (strict classes), so the capacity taken
always goes to a job that the next round also considers first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from llmos.scheduler._resources import ZERO, Resources
from llmos.scheduler._types import Job, Owner

__all__ = ["Quotas"]

_SLACK = 1e-6  # dominant shares are ratios of floats
# Fair-share reclaim starts only 2% below the entitlement: preempting to close a sliver of a
# gap costs more checkpoints than it returns, and on a large cluster some owner is always a
# few GPUs short.
_TOLERANCE = 0.02


class Quotas:
    def __init__(self, owners: Mapping[str, Owner], held: Mapping[str, Resources], total: Resources,
                 enabled: bool, entitled: Mapping[str, float] | None = None, fair_reclaim: bool = False) -> None:
        """`entitled`: each owner's fair dominant share (see `_owed.owner_entitlements`), None
        without fair share; `fair_reclaim`: owners below it may preempt others."""
        self._owners = owners
        self._held = held  # per owner: the round's running tally, updated as it starts jobs
        self._total = total
        self._enabled = enabled
        # Asked of nearly every job a round looks at, so owners without limits are told apart once.
        self._guaranteed = {name for name, o in owners.items() if o.guarantee.is_set()} if enabled else set()
        self._capped = {name for name, o in owners.items() if o.cap.is_set()} if enabled else set()
        self._entitled = entitled
        self._fair_reclaim = fair_reclaim and entitled is not None
        self._lost: dict[str, Resources] = {}  # preempted this round, per owner
        # Asked for every candidate job, answered per owner: remembered until `changed`.
        self._borrowing: dict[str, bool] = {}
        self._below: dict[str, bool] = {}
        self.revision = 0  # bumped on every change, for answers remembered elsewhere

    def changed(self, name: str) -> None:
        """`name` now holds more (the round started or claimed a job for it)."""
        self._borrowing.pop(name, None)
        self._below.pop(name, None)
        self.revision += 1

    def lost(self, name: str, amount: Resources) -> None:
        """The round preempted `amount` of `name`'s: later plans in it must not take it again.

        Only fair-share figures discount it; caps and guarantees count the job until its
        checkpoint is written, as it holds its resources till then.
        """
        self._lost[name] = self._lost.get(name, ZERO) + amount
        self.changed(name)

    def _share(self, name: str) -> float:
        held = self._held.get(name, ZERO)
        if name in self._lost:
            held = held - self._lost[name]
        return held.dominant_share(self._total)

    def under_cap(self, job: Job) -> bool:
        """Starting `job` keeps its owner within its hard cap."""
        if job.owner not in self._capped:
            return True
        return self._owners[job.owner].cap.admits(self._held.get(job.owner, ZERO) + job.total)

    def within_guarantee(self, job: Job) -> bool:
        """`job` needs a guaranteed resource and fits within its owner's guarantee."""
        owner = self._owners.get(job.owner) if self._enabled else None
        if owner is None or not owner.guarantee.covers(job.total):
            return False
        return owner.guarantee.admits(self._held.get(job.owner, ZERO) + job.total)

    def entitled(self, name: str) -> float | None:
        """`name`'s fair dominant share (never exactly 0, so that it can divide); None without fair share."""
        return max(self._entitled.get(name, 0.0), _SLACK) if self._entitled is not None else None

    def ratio(self, name: str) -> float:
        """What `name` holds over what it is entitled to (dominant shares); 1 when both are 0."""
        held = self._share(name)
        entitled = self._entitled.get(name, 0.0) if self._entitled is not None else held
        if entitled <= _SLACK:
            return math.inf if held > _SLACK else 1.0
        return held / entitled

    def below_entitlement(self, name: str) -> bool:
        """`name` holds less than its fair-share entitlement (when fair preemption is on)."""
        known = self._below.get(name)
        if known is None:
            known = self._below[name] = self._fair_reclaim and self.ratio(name) < 1 - _TOLERANCE
        return known

    def may_reclaim(self, job: Job) -> bool:
        """`job` keeps its owner within its guarantee, or its owner is below its entitlement."""
        owner = job.owner
        if owner in self._guaranteed and self.within_guarantee(job):
            return True
        known = self._below.get(owner)
        return self.below_entitlement(owner) if known is None else known

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

    def fair_budget(self, name: str, claimant: str) -> float:
        """Dominant share `name` can lose to `claimant` and still keep a larger part of its
        entitlement than `claimant` has now."""
        if not self._fair_reclaim:
            return 0.0
        return self._share(name) - self._entitled.get(name, 0.0) * self.ratio(claimant) - _SLACK

    def surplus(self, name: str) -> float:
        """Dominant share `name` holds beyond its entitlement (<= 0: none)."""
        if not self._fair_reclaim:
            return 0.0
        return self._share(name) - self._entitled.get(name, 0.0) - _SLACK

    def reclaimable_from(self, job: Job, victim_owner: str) -> bool:
        """May `job` take capacity held by `victim_owner` (classes and amounts aside)?"""
        if victim_owner == job.owner or not self.borrowing(victim_owner):
            return False
        if self.within_guarantee(job):
            return True
        return self.below_entitlement(job.owner) and self.fair_budget(victim_owner, job.owner) > 0

