"""One scheduling round: a snapshot in, decisions out. Pure: no clock, no I/O, no mutation.

The round walks the queue in policy order (see `_order`). Each job either
  - is rejected, if no placement on the idle cluster could ever hold it;
  - waits, if starting it would take its owner over a hard cap;
  - starts, if it fits what is free (gang: all workers or none);
  - claims capacity being freed, preempting the cheapest eligible set if needed (a higher class
    preempts lower ones; an owner within its guarantee reclaims from owners that borrow);
  - otherwise is blocked: with backfill the first blocked job gets a reservation that the rest
    must not delay, without backfill nothing behind it may start.
"""

from __future__ import annotations

from dataclasses import replace

from llmos.scheduler._backfill import reserve
from llmos.scheduler._claims import Claims
from llmos.scheduler._config import POLICIES, PolicyConfig
from llmos.scheduler._decision import Decision, Reject, Reservation, Start
from llmos.scheduler._fairshare import allocation_by_owner, owner_standing
from llmos.scheduler._free import FreeView
from llmos.scheduler._order import QueueOrder
from llmos.scheduler._placement import Placement, can_ever_fit, commit, place
from llmos.scheduler._quota import Quotas
from llmos.scheduler._resources import ZERO
from llmos.scheduler._snapshot import Snapshot
from llmos.scheduler._types import Job, RunningJob

__all__ = ["schedule"]


def schedule(snapshot: Snapshot, config: PolicyConfig = POLICIES["full"]) -> Decision:
    """Decide which queued jobs start (and where) and which running jobs to preempt."""
    return _Round(snapshot, config).run()


class _Round:
    def __init__(self, snap: Snapshot, config: PolicyConfig) -> None:
        self.snap = snap
        self.config = config
        self.cluster = snap.cluster
        self.index = snap.cluster.index
        self.view = FreeView.of(snap.cluster, snap.free)
        self.held = allocation_by_owner(snap.running) if config.fair_share or config.quotas else {}
        waiting = {owner for (_, owner), jobs in snap.queue.items() if jobs}
        self.quotas = Quotas(snap.owners, self.held, snap.cluster.total, config.quotas,
                             config.fair_share and config.preemption, waiting)
        self.standing = {owner: self._standing(owner) for owner in waiting} if config.fair_share else {}
        within = self.quotas.may_reclaim if config.quotas or config.fair_share else None
        self.order = QueueOrder(snap.queue, snap.now_s, config, self.standing, within)
        self.claims = Claims(snap, config, self.view, self.quotas)
        self.starts: list[Start] = []
        self.begun: list[RunningJob] = []  # started or claimed this round, for the backfill replay
        self.rejects: list[Reject] = []
        self.reservation: Reservation | None = None
        self.backfill_left = config.backfill_depth

    def _standing(self, owner: str) -> float:
        o = self.snap.owners.get(owner)
        return owner_standing(self.held.get(owner, ZERO), self.snap.usage.get(owner, ZERO),
                              o.weight if o else 1.0, self.cluster.total, self.config.history_weight)

    def run(self) -> Decision:
        while (job := self.order.pop()) is not None:
            if self.reservation is not None:
                if self.backfill_left <= 0 or (self.view.free_gpus == 0 and self.view.free_cpus < 1e-9):
                    break
                self.backfill_left -= 1
            if not self._consider(job):
                break
        return Decision(tuple(self.starts), tuple(self.claims.preempts), tuple(self.rejects), self.reservation)

    def _consider(self, job: Job) -> bool:
        """Handle one job; False stops the round (a blocked job that nothing may pass)."""
        reason = can_ever_fit(self.cluster, job)
        if reason is not None:
            self.rejects.append(Reject(job.job_id, reason))
            return True
        if not self.quotas.under_cap(job):
            self.order.drop(job.owner)
            return True
        if self.reservation is not None:
            short = self._ends_before(job, self.reservation.start_s)
            placement = place(self.view, job, respect_holds=not short)
            if placement is not None:
                self._start(job, placement)
            elif self.config.preemption and self.quotas.may_reclaim(job):
                self._claim(job, respect_holds=True)
            return True
        placement = place(self.view, job)
        if placement is not None:
            self._start(job, placement)
            return True
        if self.config.preemption and self._claim(job, respect_holds=False):
            return True
        if self.config.backfill:
            self._reserve(job)
            return self.reservation is not None
        return False

    def _ends_before(self, job: Job, shadow_s: float) -> bool:
        est = job.runtime_estimate_s
        return est is not None and self.snap.now_s + est <= shadow_s

    def _start(self, job: Job, placement: Placement) -> None:
        commit(self.view, placement, self.index)
        self.claims.started(placement)
        self.starts.append(Start(job.job_id, placement))
        self.begun.append(RunningJob(job, placement, self.snap.now_s))
        self._charge(job)

    def _claim(self, job: Job, respect_holds: bool) -> bool:
        placement = self.claims.claim(job, respect_holds)
        if placement is None:
            return False
        # It starts only once the capacity is freed, so when it ends is unknown here.
        self.begun.append(RunningJob(replace(job, runtime_estimate_s=None), placement, self.snap.now_s))
        self._charge(job)
        return True

    def _charge(self, job: Job) -> None:
        if self.config.fair_share or self.config.quotas:
            self.held[job.owner] = self.held.get(job.owner, ZERO) + job.total
            self.quotas.changed(job.owner)
            if self.config.fair_share:
                self.standing[job.owner] = self._standing(job.owner)
            self.order.restand(job.owner)

    def _reserve(self, job: Job) -> None:
        preempted = self.claims.preempted
        running = [rj for rj in self.snap.running if not rj.stopping and rj.job.job_id not in preempted]
        running.extend(self.begun)
        shadow = reserve(self.view, self.claims.future().clone(), job, running, self.snap.now_s, self.index)
        if shadow is not None:
            self.reservation = Reservation(job.job_id, shadow)
