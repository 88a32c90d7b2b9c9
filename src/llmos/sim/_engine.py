"""The discrete-event simulator: the daemon's loop, with time jumping from event to event.

Events are arrivals, completions and the end of a preempted job's checkpoint. After every
batch of events at one instant the simulator builds the same snapshot the daemon would, asks
the policy for decisions, checks them (a placement that over-commits a node is a policy bug)
and applies them. A preempted job stops computing at once, frees its resources when its
checkpoint is written, and returns to the queue with its original submit time and the work
it had left.
"""

from __future__ import annotations

import heapq
import time
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from llmos.scheduler import (
    Cluster,
    Decision,
    Job,
    Node,
    NodeFree,
    Owner,
    PolicyConfig,
    Resources,
    RunningJob,
    Snapshot,
    decay_usage,
    queue_order,
    schedule,
)
from llmos.sim._result import JobOutcome, Samples, SimResult
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
        self.cluster = Cluster(nodes)
        self.owners = {o.name: o for o in owners}
        self.trace = {t.job.job_id: t for t in trace}
        self.progress = progress
        self.free: list[NodeFree] = self.cluster.idle()
        self.running: dict[str, RunningJob] = {}
        self.queue: dict[tuple[int, str], list[Job]] = {}
        self.usage: dict[str, Resources] = {}
        self.held: dict[str, Resources] = {}
        self.held_group: dict[tuple[int, str], Resources] = {}  # what the snapshot calls `held`
        self.busy_gpus = 0.0
        self.held_gpus: dict[tuple[str, int], float] = {}  # by (owner, class), for the samples
        self.waiting_gpus: dict[tuple[str, int], float] = {}
        self.remaining_s = {t.job.job_id: t.duration_s for t in trace}
        self.run_start_s: dict[str, float] = {}
        self.version: dict[str, int] = {}
        self.outcomes = {t.job.job_id: JobOutcome(t.job.owner, t.job.submit_s, int(t.job.total.gpus))
                         for t in trace}
        for t in trace:
            self.held.setdefault(t.job.owner, ZERO)
        classes = sorted({t.job.priority for t in trace})
        for owner in self.held:
            for c in classes:
                self.held_gpus[(owner, c)] = self.waiting_gpus[(owner, c)] = 0.0
        self.samples = Samples(list(self.held), classes)
        self.events: list[tuple] = [(t.job.submit_s, _ARRIVE, n, t.job.job_id, 0) for n, t in enumerate(trace)]
        heapq.heapify(self.events)
        self.seq = len(self.events)
        self.now_s = min((t.job.submit_s for t in trace), default=0.0)
        self.latency_s: list[float] = []
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
            self._round()
            self.samples.add(self.now_s, self.busy_gpus, self.held_gpus, self.waiting_gpus)
        unfinished = [j.job_id for group in self.queue.values() for j in group]
        weights = {o: (self.owners[o].weight if o in self.owners else 1.0) for o in self.held}
        return SimResult(self.config.name, self.config.priority_classes, int(self.cluster.total.gpus),
                         self.outcomes, self.rejected, unfinished, self.samples, weights, self.latency_s,
                         self.preemptions, self.lost_gpu_s, time.perf_counter() - wall)

    def _advance(self, t: float) -> None:
        elapsed = t - self.now_s
        if elapsed > 0:
            half_life = self.config.half_life_s
            for owner, held in self.held.items():
                self.usage[owner] = decay_usage(self.usage.get(owner, ZERO), held, elapsed, half_life)
        self.now_s = t

    def _handle(self, kind: int, job_id: str, version: int) -> None:
        if version != self.version.get(job_id, 0):
            return  # a completion scheduled before the job was preempted
        if kind == _ARRIVE:
            self._enqueue(self.trace[job_id].job)
        elif kind == _FINISH:
            self._release(job_id)
            self.outcomes[job_id].end_s = self.now_s
            self.done += 1
            if self.progress:
                self.progress(self.done, len(self.trace))
        else:
            rj = self._release(job_id)
            estimate = rj.job.runtime_estimate_s
            if estimate is not None:
                estimate = max(estimate - (self.now_s - rj.start_s - rj.job.checkpoint_s), 0.0)
            self._enqueue(replace(rj.job, runtime_estimate_s=estimate))

    def _enqueue(self, job: Job) -> None:
        insort(self.queue.setdefault((job.priority, job.owner), []), job, key=queue_order)
        self.waiting_gpus[(job.owner, job.priority)] += job.total.gpus

    def _dequeue(self, job_id: str) -> Job:
        job = self.trace[job_id].job
        group = self.queue[(job.priority, job.owner)]
        k = bisect_left(group, queue_order(job), key=queue_order)
        found = group.pop(k)
        self.waiting_gpus[(job.owner, job.priority)] -= found.total.gpus
        return found

    def _release(self, job_id: str) -> RunningJob:
        rj = self.running.pop(job_id)
        for slot in rj.placement:
            i = self.cluster.index[slot.node]
            f = self.free[i]
            self.free[i] = NodeFree(f.cpus + slot.cpus, f.memory_gb + slot.memory_gb,
                                    tuple(sorted(f.gpu_indices + slot.gpu_indices)))
        self.held[rj.job.owner] -= rj.job.total
        key = (rj.job.priority, rj.job.owner)
        self.held_group[key] = self.held_group[key] - rj.job.total
        self.held_gpus[(rj.job.owner, rj.job.priority)] -= rj.job.total.gpus
        self.busy_gpus -= rj.job.total.gpus
        return rj

    def _round(self) -> None:
        snap = Snapshot(self.now_s, self.cluster, self.free, list(self.running.values()), self.queue,
                        self.owners, self.usage, self.held_group)
        began = time.perf_counter()
        decision = schedule(snap, self.config)
        self.latency_s.append(time.perf_counter() - began)
        self._apply(decision)

    def _apply(self, decision: Decision) -> None:
        for reject in decision.rejects:
            self._dequeue(reject.job_id)
            self.rejected.append((reject.job_id, reject.reason))
        for preempt in decision.preempts:
            self._preempt(preempt.job_id)
        for start in decision.starts:
            self._start(start.job_id, start.placement)

    def _preempt(self, job_id: str) -> None:
        rj = self.running[job_id]
        if rj.stopping or not rj.job.preemptible:
            raise RuntimeError(f"policy preempted {job_id}, which is stopping or not preemptible")
        ran_s = self.now_s - self.run_start_s[job_id]
        self.remaining_s[job_id] -= ran_s
        self.version[job_id] = self.version.get(job_id, 0) + 1
        end_s = self.now_s + rj.job.checkpoint_s
        self.running[job_id] = replace(rj, stopping=True, expected_end_s=end_s)
        self._push(end_s, _STOPPED, job_id)
        self.preemptions += 1
        self.outcomes[job_id].preemptions += 1
        self.lost_gpu_s += rj.job.total.gpus * rj.job.checkpoint_s

    def _start(self, job_id: str, placement) -> None:
        job = self._dequeue(job_id)
        if len(placement) != job.workers:
            raise RuntimeError(f"policy placed {len(placement)} workers of {job_id}, which has {job.workers}")
        if job.same_node and len({slot.node for slot in placement}) != 1:
            raise RuntimeError(f"policy split same-node job {job_id} across nodes")
        for slot in placement:
            i = self.cluster.index[slot.node]
            f = self.free[i]
            gpus = set(f.gpu_indices)
            if (not gpus.issuperset(slot.gpu_indices) or len(slot.gpu_indices) != job.per_worker.gpus
                    or f.cpus + 1e-6 < slot.cpus or f.memory_gb + 1e-6 < slot.memory_gb):
                raise RuntimeError(f"policy over-committed node {slot.node} with {job_id}")
            self.free[i] = NodeFree(f.cpus - slot.cpus, f.memory_gb - slot.memory_gb,
                                    tuple(g for g in f.gpu_indices if g not in slot.gpu_indices))
        self.running[job_id] = RunningJob(job, tuple(placement), self.now_s)
        self.run_start_s[job_id] = self.now_s
        self.held[job.owner] += job.total
        key = (job.priority, job.owner)
        self.held_group[key] = self.held_group.get(key, ZERO) + job.total
        self.held_gpus[(job.owner, job.priority)] += job.total.gpus
        self.busy_gpus += job.total.gpus
        outcome = self.outcomes[job_id]
        if outcome.first_start_s is None:
            outcome.first_start_s = self.now_s
        self._push(self.now_s + self.remaining_s[job_id], _FINISH, job_id)

    def _push(self, t: float, kind: int, job_id: str) -> None:
        heapq.heappush(self.events, (t, kind, self.seq, job_id, self.version.get(job_id, 0)))
        self.seq += 1
