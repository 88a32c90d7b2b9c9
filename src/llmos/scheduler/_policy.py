"""One scheduling round: a snapshot in, decisions out. Pure: no clock, no I/O, no mutation.

The round walks the queue in policy order (see `_order`). Each job either
  - is rejected, if no placement on the idle cluster could ever hold it;
  - waits, if starting it would take its owner over a hard cap;
  - starts, if it fits what is free (gang: all workers or none, see `_placement`);
  - claims capacity being freed, preempting the cheapest eligible set if needed (`_claims`,
    `_victims`: a higher class preempts lower ones; an owner within its guarantee or below its
    fair share reclaims from others);
  - otherwise is blocked: with backfill the first blocked job gets a reservation that the rest
    must not delay (`_backfill`), and may move small jobs out of its way if its wait is long
    (`_repack`); without backfill nothing behind it may start.
"""

from __future__ import annotations

import math

from llmos.scheduler._backfill import reserve
from llmos.scheduler._claims import Claims
from llmos.scheduler._config import POLICIES, PolicyConfig
from llmos.scheduler._decision import Claim, Decision, Reject, Reservation, Start
from llmos.scheduler._fairshare import allocation_by_group, by_owner, owner_standing
from llmos.scheduler._free import FreeView
from llmos.scheduler._occupancy import Occupancy
from llmos.scheduler._order import QueueOrder
from llmos.scheduler._owed import owner_entitlements
from llmos.scheduler._placement import Placement, can_ever_fit, commit, place
from llmos.scheduler._quota import Quotas
from llmos.scheduler._resources import ZERO
from llmos.scheduler._snapshot import Snapshot, queued_by_group
from llmos.scheduler._types import Job, RunningJob

__all__ = ["schedule"]

# Moving jobs to make room for a blocked one must pay back: the GPU-seconds it saves the blocked
# job (its wait x its GPUs) must be at least this many times the GPU-seconds the moves lose.
_REPACK_PAYBACK = 2.0


def schedule(snapshot: Snapshot, config: PolicyConfig = POLICIES["full"]) -> Decision:
    """Decide which queued jobs start (and where) and which running jobs to preempt."""
    return _Round(snapshot, config).run()


class _Round:
    def __init__(self, snap: Snapshot, config: PolicyConfig) -> None:
        self.snap = snap
        self.config = config
        self.cluster = snap.cluster
        self.index = snap.cluster.index
        occupancy = snap.occupancy or Occupancy.of(snap.cluster, snap.free, snap.running)
        self.running_by_end = occupancy.by_end
        self.view = FreeView.of(occupancy)
        by_group: dict = {}
        if config.fair_share or config.quotas:
            held = snap.held if snap.held is not None else allocation_by_group(snap.running)
            by_group = {key: r for key, r in held.items() if r != ZERO}
        self.held = by_owner(by_group)
        waiting = {key for key, jobs in snap.queue.items() if jobs}
        entitled = None
        if config.fair_share:
            queued = snap.queued if snap.queued is not None else queued_by_group(snap.queue)
            entitled = owner_entitlements(by_group, {key: queued[key] for key in waiting if key in queued},
                                          snap.owners, snap.cluster.total, snap.owed, config.debt_horizon_s)
        self.quotas = Quotas(snap.owners, self.held, snap.cluster.total, config.quotas, entitled,
                             fair_reclaim=config.preemption)
        owners_waiting = {owner for _, owner in waiting}
        self.standing = {owner: self._standing(owner) for owner in owners_waiting} if config.fair_share else {}
        within = self.quotas.may_reclaim if config.quotas or config.fair_share else None
        self.order = QueueOrder(snap.queue, snap.now_s, config, self.standing, within)
        self.claims = Claims(snap, occupancy, config, self.view, self.quotas, self.held.keys())
        self.starts: list[Start] = []
        self.begun: list[RunningJob] = []  # started or claimed this round, for the backfill replay
        self.claimed: list[Claim] = []
        self.rejects: list[Reject] = []
        self.reservation: Reservation | None = None
        self._unheld = 0  # idle GPUs the reservation's holds leave to jobs that outlast it

    def _standing(self, owner: str) -> float:
        o = self.snap.owners.get(owner)
        return owner_standing(self.held.get(owner, ZERO), self.snap.usage.get(owner, ZERO), o.weight if o else 1.0,
                              self.cluster.total, self.config.history_weight, self.quotas.entitled(owner))

    def run(self) -> Decision:
        while self.reservation is None:
            job = self.order.pop()
            if job is None or not self._consider(job):
                return self._decision()
        self._backfill_window()
        return self._decision()

    def _decision(self) -> Decision:
        return Decision(tuple(self.starts), tuple(self.claims.preempts), tuple(self.rejects), self.reservation,
                        tuple(self.claimed))

    def _consider(self, job: Job) -> bool:
        """Handle one job while nothing is reserved; False stops the round (a blocked job that
        nothing may pass)."""
        if not self._admissible(job):
            return True
        placement = place(self.view, job)
        if placement is not None:
            self._start(job, placement)
            return True
        return self._blocked(job)

    def _admissible(self, job: Job) -> bool:
        """Whether `job` may run now: rejected if it never can, skipped (with the rest of its
        owner's jobs) if it would take its owner over a hard cap."""
        reason = can_ever_fit(self.cluster, job)
        if reason is not None:
            self.rejects.append(Reject(job.job_id, reason))
            return False
        if not self.quotas.under_cap(job):
            self.order.drop(job.owner)
            return False
        return True

    def _backfill_window(self) -> None:
        """The jobs behind the reservation, at most `backfill_depth` of them, while anything is free.

        In a busy round most of them fit nowhere and may preempt nobody: this loop is where a
        round spends most of its time, so the cheapest checks come first and stay inline.
        """
        view, pop, quotas = self.view, self.order.pop, self.quotas
        now_s, shadow_s = self.snap.now_s, self.reservation.start_s
        known_shadow = shadow_s != math.inf
        reclaim = self.config.preemption
        for _ in range(self.config.backfill_depth):
            if view.free_gpus == 0 and view.free_cpus < 1e-9:
                return
            job = pop()
            if job is None:
                return
            if not self._admissible(job):
                continue
            gpus = job.total.gpus
            if gpus <= view.free_gpus:  # else it fits nowhere now, in held capacity or not
                # It may use what the reservation holds if its estimate ends it by the shadow
                # time (never when the shadow time is unknown: be conservative).
                est = job.runtime_estimate_s
                short = est is not None and known_shadow and now_s + est <= shadow_s
                one_node = gpus if job.workers == 1 or job.same_node else job.per_worker.gpus
                if ((short or gpus <= self._unheld) and one_node <= view.largest_gap()
                        and self._backfill(job, short)):
                    continue
            if reclaim and quotas.may_reclaim(job) and self._claim(job, respect_holds=True):
                self._unheld = view.unheld_gpus()

    def _blocked(self, job: Job) -> bool:
        """The first job that does not fit: it claims, or gets the reservation (and may repack)."""
        if self.config.preemption and self._claim(job, respect_holds=False):
            return True
        if not self.config.backfill:
            return self.config.preemption and self._repack(job, math.inf)
        self._reserve(job)
        if self.reservation is None:
            return False
        if self.config.preemption:
            wait_s = self.reservation.start_s - self.snap.now_s
            if self._repack(job, wait_s * job.total.gpus / _REPACK_PAYBACK):
                self._unreserve()
        return True

    def _backfill(self, job: Job, short: bool) -> bool:
        """Start `job` if it fits without delaying the reservation (a `short` job may use what
        it holds)."""
        placement = place(self.view, job, respect_holds=not short)
        if placement is None:
            return False
        self._start(job, placement)
        self._unheld = self.view.unheld_gpus()
        return True

    def _start(self, job: Job, placement: Placement) -> None:
        commit(self.view, placement, self.index)
        self.claims.started(placement)
        self.starts.append(Start(job.job_id, placement))
        self.begun.append(RunningJob(job, placement, self.snap.now_s))
        self._charge(job)

    def _repack(self, job: Job, budget: float) -> bool:
        placement = self.claims.repack(job, budget)
        if placement is None:
            return False
        self._claimed(job, placement)
        return True

    def _unreserve(self) -> None:
        self.reservation = None
        self.view.holds.clear()
        self.claims.future().holds.clear()

    def _claim(self, job: Job, respect_holds: bool) -> bool:
        placement = self.claims.claim(job, respect_holds)
        if placement is None:
            return False
        self._claimed(job, placement)
        return True

    def _claimed(self, job: Job, placement: Placement) -> None:
        self.claimed.append(Claim(job.job_id, placement))
        # It starts only once the capacity is freed, so when it ends is unknown here.
        self.begun.append(RunningJob(job, placement, self.snap.now_s, expected_end_s=math.inf))
        self._charge(job)

    def _charge(self, job: Job) -> None:
        if self.config.fair_share or self.config.quotas:
            self.held[job.owner] = self.held.get(job.owner, ZERO) + job.total
            self.quotas.changed(job.owner)
            if self.config.fair_share:
                self.standing[job.owner] = self._standing(job.owner)
            self.order.restand(job.owner)

    def _reserve(self, job: Job) -> None:
        future = self.claims.future()
        ordered = self.running_by_end is not None
        running = self.running_by_end if ordered else self.snap.running
        shadow = reserve(self.view, future.clone(), job, running, self.begun, self.claims.preempted,
                         self.snap.now_s, self.index, ordered=ordered)
        if shadow is not None:
            self.reservation = Reservation(job.job_id, shadow)
            future.holds = dict(self.view.holds)  # later claims must respect the reservation too
            self._unheld = self.view.unheld_gpus()
