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
from llmos.scheduler._config import POLICIES, PolicyConfig
from llmos.scheduler._decision import Decision, Preempt, Reject, Reservation, Start
from llmos.scheduler._fairshare import allocation_by_owner, owner_standing
from llmos.scheduler._free import FreeView
from llmos.scheduler._order import QueueOrder
from llmos.scheduler._placement import can_ever_fit, commit, place
from llmos.scheduler._preempt import lost_work, plan_preemption
from llmos.scheduler._quota import Quotas
from llmos.scheduler._repack import plan_repack
from llmos.scheduler._resources import ZERO
from llmos.scheduler._snapshot import Snapshot
from llmos.scheduler._types import Job, RunningJob

__all__ = ["schedule"]

# Past the reservation a round still lets a few jobs preempt (an owner reclaiming its
# guarantee must not wait behind a borrower's reservation); each try scans running jobs, so
# the number of tries is bounded to keep a round short.
_CLAIMS_PAST_RESERVATION = 8


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
        self.pending: FreeView | None = None  # capacity being freed by checkpointing jobs, unclaimed
        need_usage = config.fair_share or config.quotas
        self.held = allocation_by_owner(snap.running) if need_usage else {}
        waiting = {owner for (_, owner), jobs in snap.queue.items() if jobs}
        self.quotas = Quotas(snap.owners, self.held, snap.cluster.total, config.quotas,
                             config.fair_share and config.preemption, waiting)
        self.standing = {owner: self._standing(owner) for _, owner in snap.queue} if config.fair_share else {}
        guaranteed = self.quotas.may_reclaim if config.quotas or config.fair_share else None
        self.order = QueueOrder(snap.queue, snap.now_s, config, self.standing, guaranteed)
        self.preempted: set[str] = set()
        self.starts: list[Start] = []
        self.begun: list[RunningJob] = []  # started or claimed this round, for the backfill replay
        self.preempts: list[Preempt] = []
        self.rejects: list[Reject] = []
        self.reservation: Reservation | None = None
        self.backfill_left = config.backfill_depth
        self.claims_left = _CLAIMS_PAST_RESERVATION
        self._preemptible: list[RunningJob] | None = None

    def _standing(self, owner: str) -> float:
        o = self.snap.owners.get(owner)
        return owner_standing(self.held.get(owner, ZERO), self.snap.usage.get(owner, ZERO),
                              o.weight if o else 1.0, self.cluster.total, self.config.history_weight)

    def run(self) -> Decision:
        while (job := self.order.pop()) is not None:
            if self.reservation is not None:
                if self.backfill_left <= 0 or self._exhausted():
                    break
                self.backfill_left -= 1
            if not self._consider(job):
                break
        return Decision(tuple(self.starts), tuple(self.preempts), tuple(self.rejects), self.reservation)

    def _exhausted(self) -> bool:
        v = self.view
        return v.free_gpus == 0 and v.free_cpus < 1e-9

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
            elif self.config.preemption and self.claims_left > 0:
                self.claims_left -= 1
                self._claim(job, respect_holds=True)
            return True
        placement = place(self.view, job)
        if placement is not None:
            self._start(job, placement)
            return True
        if self.config.preemption and self._claim(job):
            return True
        if self.config.backfill:
            self._reserve(job)
            return self.reservation is not None
        return False

    def _ends_before(self, job: Job, shadow_s: float) -> bool:
        est = job.runtime_estimate_s
        return est is not None and self.snap.now_s + est <= shadow_s

    def _start(self, job: Job, placement) -> None:
        commit(self.view, placement, self.index)
        self.starts.append(Start(job.job_id, placement))
        self.begun.append(RunningJob(job, placement, self.snap.now_s))
        self._charge(job)

    def _charge(self, job: Job) -> None:
        if self.config.fair_share or self.config.quotas:
            self.held[job.owner] = self.held.get(job.owner, ZERO) + job.total
            if self.config.fair_share:
                self.standing[job.owner] = self._standing(job.owner)
            self.order.restand(job.owner)

    def _future(self) -> FreeView:
        """Free now plus capacity being freed (unclaimed), as a scratch copy."""
        future = self.view.clone()
        pending = self._pending()
        for i, gpus in enumerate(pending.gpus):
            if gpus or pending.cpus[i] > 0 or pending.mem[i] > 0:
                future.give(i, pending.cpus[i], pending.mem[i], gpus)
        return future

    def _pending(self) -> FreeView:
        if self.pending is None:
            empty = [0.0] * len(self.cluster.nodes)
            pending = FreeView(self.cluster.nodes, empty, empty.copy(), [()] * len(empty),
                               [set(range(len(empty)))], {})
            for rj in self.snap.running:
                if rj.stopping:
                    self._add_pending(pending, rj)
            self.pending = pending
        return self.pending

    def _add_pending(self, pending: FreeView, rj: RunningJob) -> None:
        for slot in rj.placement:
            pending.give(self.index[slot.node], slot.cpus, slot.memory_gb, slot.gpu_indices)

    def _claim(self, job: Job, respect_holds: bool = False) -> bool:
        """Take capacity being freed for `job`: preempt the cheapest eligible set, or repack."""
        allowed = self._victims(job)
        candidates = [rj for rj, _ in allowed.values()]
        future = self._future()
        plan = plan_preemption(job, future, candidates, self.index, self.cluster.total, respect_holds)
        if plan is not None:
            placement, victims = plan
            for rj in victims:
                self._preempt(rj, allowed[rj.job.job_id][1])
        else:
            movable = [rj for rj in self._movable() if rj.job.job_id not in self.preempted
                       and (not self.config.priority_classes or rj.job.priority <= job.priority)]
            repack = plan_repack(job, future, movable, self.index, self.cluster.total, respect_holds)
            if repack is None:
                return False
            placement, moves = repack
            for rj, target in moves:
                self._preempt(rj, f"repack: moving to make room for {job.job_id}")
                self._take_claim(target)  # keep the moved job's landing spot free this round
        self._take_claim(placement)
        # It starts only once the capacity is freed, so when it ends is unknown here.
        self.begun.append(RunningJob(replace(job, runtime_estimate_s=None), placement, self.snap.now_s))
        self._charge(job)
        return True

    def _preempt(self, rj: RunningJob, reason: str) -> None:
        self.preempts.append(Preempt(rj.job.job_id, reason))
        self.preempted.add(rj.job.job_id)
        self._add_pending(self._pending(), rj)

    def _movable(self) -> list[RunningJob]:
        if self._preemptible is None:
            self._preemptible = [rj for rj in self.snap.running if rj.job.preemptible and not rj.stopping]
        return self._preemptible

    def _take_claim(self, placement) -> None:
        """Remove a claimed placement: first from capacity being freed, the rest from free capacity."""
        pending = self._pending()
        for slot in placement:
            i = self.index[slot.node]
            from_pending = tuple(g for g in slot.gpu_indices if g in pending.gpus[i])
            from_free = tuple(g for g in slot.gpu_indices if g not in from_pending)
            c = min(slot.cpus, pending.cpus[i])
            m = min(slot.memory_gb, pending.mem[i])
            pending.take(i, c, m, from_pending)
            self.view.take(i, slot.cpus - c, slot.memory_gb - m, from_free)

    def _victims(self, job: Job) -> dict[str, tuple[RunningJob, str]]:
        """Running jobs `job` may preempt (by id), each with the reason it would be told.

        A higher class preempts lower classes of its own owner, or of owners that borrow:
        capacity an owner holds within its guarantee is never taken by someone else's class.
        An owner within its guarantee (or fair share) reclaims from others in the same class.
        """
        classes = self.config.priority_classes
        reclaim = self.quotas.may_reclaim(job)
        if not classes and not reclaim:
            return {}
        quotas = self.quotas
        guaranteed = quotas.within_guarantee(job)
        budget: dict[str, float] = {}  # dominant share each owner can still lose to fair-share reclaim
        out: dict[str, tuple[RunningJob, str]] = {}
        for rj in sorted(self._movable(), key=self._victim_cost):
            other = rj.job
            if other.job_id in self.preempted or (classes and other.priority > job.priority):
                continue
            if classes and other.priority < job.priority and (other.owner == job.owner
                                                              or quotas.borrowing(other.owner)):
                out[other.job_id] = (rj, f"priority: {job.job_id} (class {job.priority}) needs its resources")
            elif reclaim and quotas.reclaimable_from(job, other.owner):
                if not guaranteed:
                    left = budget.setdefault(other.owner, quotas.excess(other.owner))
                    share = other.total.dominant_share(self.cluster.total)
                    if share > left + 1e-9:
                        continue
                    budget[other.owner] = left - share
                out[other.job_id] = (rj, f"reclaim: {job.owner} is below its guarantee or fair share and "
                                         f"{other.owner} is above")
        return out

    def _victim_cost(self, rj: RunningJob) -> tuple[float, float]:
        return (lost_work(rj, self.cluster.total), -rj.start_s)

    def _reserve(self, job: Job) -> None:
        running = [rj for rj in self.snap.running if not rj.stopping and rj.job.job_id not in self.preempted]
        running.extend(self.begun)
        shadow = reserve(self.view, self._future(), job, running, self.snap.now_s, self.index)
        if shadow is not None:
            self.reservation = Reservation(job.job_id, shadow)
