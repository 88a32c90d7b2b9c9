"""The discrete-event simulator: the daemon's loop, with time jumping from event to event.

Events are arrivals, completions and the end of a preempted job's checkpoint. After every
batch of events at one instant the simulator builds the same snapshot the daemon would, asks
the policy for decisions and applies them (`_state` checks every placement). A preempted job
stops computing at once, frees its resources when its checkpoint is written, and returns to
the queue with its original submit time (its place) and the work it had left. The capacity
each round claims for queued jobs out of what checkpoints are freeing is recorded with the
samples, as it counts for the claimant's share (see `_report`).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from llmos.scheduler import (
    Cluster,
    Decision,
    Node,
    Owner,
    PolicyConfig,
    Resources,
    decay_usage,
    schedule,
    update_owed,
)
from llmos.sim._result import JobOutcome, Samples, SimResult
from llmos.sim._state import ClusterState
from llmos.sim._trace import TraceJob

__all__ = ["simulate"]

_STOPPED, _FINISH, _ARRIVE = 0, 1, 2  # at one instant, free capacity before admitting arrivals
ZERO = Resources()


def simulate(trace: Sequence[TraceJob], nodes: Iterable[Node], config: PolicyConfig,
             owners: Iterable[Owner] = (), progress: Callable[[int, int], None] | None = None,
             until_s: float | None = None) -> SimResult:
    """Replay `trace` on `nodes` under `config` and return what happened (up to `until_s`)."""
    return _Simulation(trace, nodes, config, owners, progress).run(until_s)


class _Simulation:
    def __init__(self, trace: Sequence[TraceJob], nodes: Iterable[Node], config: PolicyConfig,
                 owners: Iterable[Owner], progress: Callable[[int, int], None] | None) -> None:
        self.config = config
        self.owners = {o.name: o for o in owners}
        self.state = ClusterState(Cluster(nodes), self.owners)
        self.trace = {t.job.job_id: t for t in trace}
        self.progress = progress
        self.usage: dict[str, Resources] = {}
        self.owed: dict[str, float] = {}  # kept only where the policy reads it
        self.keeps_owed = bool(config.fair_share and config.debt_horizon_s)
        self.remaining_s = {t.job.job_id: t.duration_s for t in trace}
        self.version: dict[str, int] = {}  # bumped on preemption: the old completion event is void
        self.outcomes = {t.job.job_id: JobOutcome(t.job.owner, t.job.submit_s, int(t.job.total.gpus))
                         for t in trace}
        owner_names = list(dict.fromkeys(t.job.owner for t in trace))
        self.samples = Samples(owner_names, sorted({t.job.priority for t in trace}))
        self.events: list[tuple] = [(t.job.submit_s, _ARRIVE, n, t.job.job_id, 0) for n, t in enumerate(trace)]
        heapq.heapify(self.events)
        self.seq = len(self.events)
        self.now_s = min((t.job.submit_s for t in trace), default=0.0)
        self.latency_s: list[float] = []
        self.decisions: list[int] = []  # starts + preemptions + rejections per round
        self.rejected: list[tuple[str, str]] = []
        self.preemptions = 0
        self.lost_gpu_s = 0.0
        self.done = 0

    def run(self, until_s: float | None = None) -> SimResult:
        wall = time.perf_counter()
        while self.events:
            t = self.events[0][0]
            if until_s is not None and t > until_s:
                break
            self._advance(t)
            while self.events and self.events[0][0] == t:
                _, kind, _, job_id, version = heapq.heappop(self.events)
                self._handle(kind, job_id, version)
            decision = self._round()
            allocated = self.state.allocated(decision.claims, self.trace) if decision.claims else None
            self.samples.add(self.now_s, self.state.busy_gpus, self.state.held, self.state.queued, allocated)
        unfinished = [j.job_id for group in self.state.queue.values() for j in group]
        weights = {o: (self.owners[o].weight if o in self.owners else 1.0) for o in self.samples.owners}
        return SimResult(self.config.name, self.config.priority_classes, int(self.state.cluster.total.gpus),
                         self.outcomes, self.rejected, unfinished, self.samples, weights, self.latency_s,
                         self.decisions, self.preemptions, self.lost_gpu_s, time.perf_counter() - wall)

    def _advance(self, t: float) -> None:
        elapsed = t - self.now_s
        if elapsed > 0:
            for owner in self.samples.owners:
                held = self.state.owner_held(owner)
                self.usage[owner] = decay_usage(self.usage.get(owner, ZERO), held, elapsed, self.config.half_life_s)
            if self.keeps_owed:
                self.owed = update_owed(self.owed, self.state.held, self.state.queued, self.owners,
                                        self.state.cluster.total, elapsed, self.config.half_life_s)
        self.now_s = t

    def _handle(self, kind: int, job_id: str, version: int) -> None:
        if version != self.version.get(job_id, 0):
            return  # a completion scheduled before the job was preempted
        if kind == _ARRIVE:
            self.state.enqueue(self.trace[job_id].job)
        elif kind == _FINISH:
            self.state.release(job_id)
            self.outcomes[job_id].end_s = self.now_s
            self.done += 1
            if self.progress:
                self.progress(self.done, len(self.trace))
        else:
            rj = self.state.release(job_id)
            estimate = rj.job.runtime_estimate_s
            if estimate is not None:  # what is left of it
                estimate = max(estimate - (self.now_s - rj.start_s - rj.job.checkpoint_s), 0.0)
            self.state.enqueue(replace(rj.job, runtime_estimate_s=estimate, queued_s=self.now_s,
                                       waited_s=rj.job.waited_by(rj.start_s)))

    def _round(self) -> Decision:
        snap = self.state.snapshot(self.now_s, self.usage, self.owed)
        began = time.perf_counter()
        decision = schedule(snap, self.config)
        self.latency_s.append(time.perf_counter() - began)
        self.decisions.append(len(decision.starts) + len(decision.preempts) + len(decision.rejects))
        self._apply(decision)
        return decision

    def _apply(self, decision: Decision) -> None:
        for reject in decision.rejects:
            self.state.dequeue(self.trace[reject.job_id].job)
            self.rejected.append((reject.job_id, reject.reason))
        for preempt in decision.preempts:
            self._preempt(preempt.job_id)
        for start in decision.starts:
            job = self.state.dequeue(self.trace[start.job_id].job)
            self.state.start(job, tuple(start.placement), self.now_s)
            outcome = self.outcomes[start.job_id]
            if outcome.first_start_s is None:
                outcome.first_start_s = self.now_s
            self._push(self.now_s + self.remaining_s[start.job_id], _FINISH, start.job_id)

    def _preempt(self, job_id: str) -> None:
        end_s = self.now_s + self.state.running[job_id].job.checkpoint_s
        rj = self.state.stopping(job_id, end_s)
        self.remaining_s[job_id] -= self.now_s - rj.start_s
        self.version[job_id] = self.version.get(job_id, 0) + 1
        self._push(end_s, _STOPPED, job_id)
        self.preemptions += 1
        self.outcomes[job_id].preemptions += 1
        self.lost_gpu_s += rj.job.total.gpus * rj.job.checkpoint_s

    def _push(self, t: float, kind: int, job_id: str) -> None:
        heapq.heappush(self.events, (t, kind, self.seq, job_id, self.version.get(job_id, 0)))
        self.seq += 1
