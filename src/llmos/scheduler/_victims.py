"""Who a blocked job may preempt, cheapest first.

A higher class preempts lower classes of its own owner or of owners that borrow (capacity an
owner holds within its guarantee is never taken by someone else's class). An owner within its
guarantee, or below its fair share, reclaims from others in the same or lower classes (see
`_quota` for how much fair-share reclaim may take from each).
Running jobs come grouped by class, cheapest first (`Occupancy`), so a job that may preempt
nobody costs a glance at a few groups rather than a pass over thousands of jobs.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from llmos.scheduler._quota import Quotas
from llmos.scheduler._resources import Resources
from llmos.scheduler._types import Job, RunningJob

__all__ = ["Movable", "Victims", "choose_victims"]

_WEIGHED = 64  # cheapest candidates a plan weighs: bounds a round on a large cluster
_LOST_WORK = attrgetter("lost_work")


@dataclass
class Victims:
    """Running jobs a blocked job may preempt, cheapest first, and why (`priority` or `reclaim`).

    `budget` is the dominant share fair-share reclaim may take from each owner (see `_quota`).
    It bounds a plan, the set actually preempted, not the list of candidates: charging every
    candidate would spend an owner's budget on jobs that sit on nodes the plan never uses.
    `surplus` is what an owner holds above its entitlement: a plan that takes a job that has
    not settled from it must leave it at least its entitlement (see `choose_victims`).
    """

    ranked: list[RunningJob] = field(default_factory=list)
    why: dict[str, str] = field(default_factory=dict)
    budget: dict[str, float] = field(default_factory=dict)
    surplus: dict[str, float] = field(default_factory=dict)
    share: dict[str, float] = field(default_factory=dict)  # job id -> dominant share, for budgeted jobs
    fresh: set[str] = field(default_factory=set)  # budgeted jobs that have not settled

    def affordable(self, chosen: Iterable[RunningJob]) -> bool:
        """Preempting `chosen` stays within every owner's fair-share budget (and surplus)."""
        if not self.share:
            return True
        spent: dict[str, float] = {}
        fresh: set[str] = set()
        for rj in chosen:
            s = self.share.get(rj.job.job_id)
            if s is not None:
                spent[rj.owner] = spent.get(rj.owner, 0.0) + s
                if rj.job.job_id in self.fresh:
                    fresh.add(rj.owner)
        return all(s <= (self.surplus[o] if o in fresh else self.budget[o]) + 1e-9 for o, s in spent.items())

    def left_after(self, chosen: Sequence[RunningJob], skip: Collection[str]) -> Victims:
        """The candidates once `chosen` are preempted: those not in `skip`, with what the budgets
        (and surpluses) have left; a plan that spends what is left stays within the whole."""
        budget, surplus = dict(self.budget), dict(self.surplus)
        for rj in chosen:
            s = self.share.get(rj.job.job_id)
            if s is not None:
                budget[rj.owner] -= s
                if rj.owner in surplus:
                    surplus[rj.owner] -= s
        return Victims([rj for rj in self.ranked if rj.job.job_id not in skip], self.why, budget, surplus,
                       self.share, self.fresh)


class Movable:
    """Preemptible running jobs that are not already stopping, by class (ascending), cheapest first."""

    def __init__(self, by_class: Mapping[int, list[RunningJob]]) -> None:
        self.classes = {p: by_class[p] for p in sorted(by_class) if by_class[p]}  # read, never changed
        self._filtered: dict[tuple, list[RunningJob]] = {}

    def cheapest_first(self, p: int, owners: frozenset[str] | None = None,
                       settled_s: float = math.inf) -> list[RunningJob]:
        """Class `p`'s jobs (of `owners` only, if given, started by `settled_s`), cheapest first."""
        group = self.classes[p]
        if owners is None and settled_s == math.inf:
            return group
        key = (p, owners, settled_s)
        if key not in self._filtered:  # several plans in a round often ask the same
            self._filtered[key] = [rj for rj in group if (owners is None or rj.owner in owners)
                                   and rj.start_s <= settled_s]
        return self._filtered[key]


def choose_victims(job: Job, movable: Movable, quotas: Quotas, classes: bool, owners: Collection[str],
                   preempted: Collection[str], total: Resources,
                   settled_s: float) -> Victims:
    """Running jobs `job` may preempt, cheapest first, and why (`priority` or `reclaim`).

    `owners` are those holding resources, or empty when no rule tells owners apart (no quotas,
    no fair share): then every owner counts as borrowing. Fair-share reclaim takes only jobs
    started by `settled_s`, so that a job is not bounced between owners as their shares see-saw,
    unless the owner keeps at least its entitlement without them: then it may not reclaim them
    back, so they cannot bounce, and waiting for them to settle would only keep an owner below
    its share while one above it holds on (typically to jobs it backfilled meanwhile).
    """
    reclaim = quotas.may_reclaim(job)
    by_class = {o for o in owners if o == job.owner or quotas.borrowing(o)} if classes else set()
    by_reclaim: set[str] = set()
    budget: dict[str, float] = {}  # what fair-share reclaim may take from each owner (see `_quota`)
    surplus: dict[str, float] = {}  # owners above their entitlement: by how much
    if reclaim:
        guaranteed = quotas.within_guarantee(job)
        for o in owners:
            if quotas.reclaimable_from(job, o):
                by_reclaim.add(o)
                if not guaranteed:
                    budget[o] = quotas.fair_budget(o, job.owner)
                    if (s := quotas.surplus(o)) > 0:
                        surplus[o] = s
    settling = frozenset(by_reclaim - surplus.keys())
    lists = []
    for p in movable.classes:
        if classes and p < job.priority:  # the class rule: no need to settle
            lists.append(movable.cheapest_first(p, frozenset(by_class) if owners else None))
        if by_reclaim and (not classes or p <= job.priority):
            if settling:
                lists.append(movable.cheapest_first(p, settling, settled_s if budget else math.inf))
            if surplus:
                lists.append(movable.cheapest_first(p, frozenset(surplus)))
    out = Victims(budget=budget, surplus=surplus)
    why = out.why
    for rj in heapq.merge(*lists, key=_LOST_WORK):
        if rj.job.job_id in preempted or rj.job.job_id in why:
            continue
        if classes and rj.priority < job.priority and (not owners or rj.owner in by_class):
            why[rj.job.job_id] = "priority"
        else:
            if rj.owner in budget:  # fair-share reclaim (a guarantee is reclaimed at once)
                share = rj.job.total.dominant_share(total)
                fresh = rj.start_s > settled_s
                if share > (surplus[rj.owner] if fresh else budget[rj.owner]) + 1e-9:
                    continue
                out.share[rj.job.job_id] = share
                if fresh:
                    out.fresh.add(rj.job.job_id)
            why[rj.job.job_id] = "reclaim"
        out.ranked.append(rj)
        if len(out.ranked) >= _WEIGHED:
            break
    return out
