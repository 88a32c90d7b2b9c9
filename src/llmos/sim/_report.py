"""The numbers a simulation is judged by, as a Pydantic model that serialises to JSON.

Fair share is measured as the policy is meant to achieve it: at every instant an owner's
entitlement is its weighted max-min fair part of the cluster's GPUs among owners with work
(running or waiting), capped by its own demand. Under a policy with strict priority classes
the GPUs go to the highest class first: each class's demand is split max-min fairly out of
what higher classes left (`entitled`); the class-blind split is reported too
(`entitled_any_class`). For each owner the report compares, over the time it had work
waiting, its time-averaged share of the GPUs with its time-averaged entitlement; a ratio of
1 is exactly fair. A stricter, instant-wise figure sits beside it: the fraction of that
waiting time in which the owner held at least 0.9x its entitlement of the moment (whole jobs
and checkpoints make 100% unreachable: an owner 3 GPUs short whose next job needs 8 stays
short until 8 are free).

An owner's share is what the policy allocated to it: the GPUs its jobs hold, where GPUs being
freed by a preempted job's checkpoint that the round has claimed for a queued job count for
that job's owner from the moment of the preemption, not for the owner checkpointing out of
them (the capacity is the claimant's; the checkpoint is the preemption's price, reported as
GPU-hours lost). Without that, every preemption made for an owner would count against it
for the 20-120 s its victims take to checkpoint, which no policy can avoid, and an owner that
waits little in all (minutes per episode) would be judged mostly on checkpoint times. The
figure on running jobs alone (`ratio_running`: a claimed GPU counts for the job still
checkpointing on it) is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from llmos.scheduler import class_entitlements, entitlements
from llmos.sim._result import SimResult

__all__ = ["OwnerShare", "Rejection", "SimReport", "Stats", "entitled_at", "percentile", "summarize"]

_INSTANT = 0.9  # the instant-wise figure: time holding at least this much of the entitlement


class Stats(BaseModel):
    mean_s: float
    median_s: float
    p95_s: float
    p99_s: float


class OwnerShare(BaseModel):
    owner: str
    weight: float
    waiting_s: float = Field(description="Time this owner had work waiting.")
    share: float = Field(description="Mean fraction of the GPUs allocated to it while it had work waiting "
                                     "(claimed capacity being freed counts for the claimant).")
    entitled: float = Field(description="Mean fraction it was entitled to over the same time.")
    ratio: float = Field(description="share / entitled (1.0: exactly fair).")
    entitled_any_class: float = Field(description="Mean entitlement if classes were ignored.")
    ratio_any_class: float = Field(description="share / entitled_any_class.")
    time_at_90: float = Field(1.0, description="Fraction of its waiting time it held >= 0.9x its entitlement.")
    share_running: float = Field(0.0, description="As share, counting only what its jobs hold (claims aside).")
    ratio_running: float = Field(1.0, description="share_running / entitled.")


class Rejection(BaseModel):
    job_id: str
    reason: str


class SimReport(BaseModel):
    policy: str
    jobs: int
    completed: int
    unfinished: int
    rejected: list[Rejection]
    jct: Stats
    queueing_delay: Stats
    makespan_s: float
    gpu_utilisation: float
    preemptions: int
    gpu_hours_lost: float
    rounds: int
    decision_ms_mean: float
    decision_ms_max: float
    replay_wall_s: float
    owners: list[OwnerShare]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of already sorted values; 0 when empty."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _stats(values: list[float]) -> Stats:
    values.sort()
    mean = sum(values) / len(values) if values else 0.0
    return Stats(mean_s=mean, median_s=percentile(values, 50), p95_s=percentile(values, 95),
                 p99_s=percentile(values, 99))


def summarize(result: SimResult) -> SimReport:
    done = [o for o in result.outcomes.values() if o.end_s is not None]
    jct = [o.end_s - o.submit_s for o in done]
    wait = [o.first_start_s - o.submit_s for o in done]
    start_s = min((o.submit_s for o in result.outcomes.values()), default=0.0)
    end_s = max((o.end_s for o in done), default=start_s)
    lat = result.round_latency_s
    return SimReport(
        policy=result.policy, jobs=len(result.outcomes), completed=len(done), unfinished=len(result.unfinished),
        rejected=[Rejection(job_id=j, reason=r) for j, r in result.rejected],
        jct=_stats(jct), queueing_delay=_stats(wait), makespan_s=end_s - start_s,
        gpu_utilisation=_utilisation(result, start_s, end_s), preemptions=result.preemptions,
        gpu_hours_lost=result.lost_gpu_s / 3600, rounds=len(lat),
        decision_ms_mean=1e3 * sum(lat) / len(lat) if lat else 0.0, decision_ms_max=1e3 * max(lat, default=0.0),
        replay_wall_s=result.wall_s, owners=owner_shares(result))


def _utilisation(result: SimResult, start_s: float, end_s: float) -> float:
    s = result.samples
    busy = sum(b * (t1 - t0) for t0, t1, b in zip(s.times_s, s.times_s[1:], s.busy_gpus, strict=False))
    span = end_s - start_s
    return busy / (span * result.total_gpus) if span > 0 and result.total_gpus else 0.0


def entitled_at(result: SimResult, k: int) -> dict[str, float]:
    """Each owner's entitled GPUs after round `k`, under the policy's own rules (see above)."""
    s = result.samples
    if result.priority_classes:
        return _by_class(s, k, result.weights, result.total_gpus)
    demand = {o: s.owner_held(o, k) + s.owner_waiting(o, k) for o in s.owners}
    return entitlements(demand, result.weights, result.total_gpus)


def owner_shares(result: SimResult) -> list[OwnerShare]:
    s, total = result.samples, result.total_gpus
    # per owner: waiting time, share x time, entitlement x time, class-blind entitlement x time,
    # time holding >= 0.9x the entitlement, share of running jobs x time
    acc = {o: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0] for o in s.owners}
    for k in range(len(s.times_s) - 1):
        dt = s.times_s[k + 1] - s.times_s[k]
        if dt <= 0:
            continue
        demand = {o: s.owner_held(o, k) + s.owner_waiting(o, k) for o in s.owners}
        blind = entitlements(demand, result.weights, total)
        fair = entitled_at(result, k) if result.priority_classes else blind
        for o in s.owners:
            if s.owner_waiting(o, k) > 0:
                a = acc[o]
                allocated = s.owner_allocated(o, k)
                a[0] += dt
                a[1] += dt * allocated / total
                a[2] += dt * fair[o] / total
                a[3] += dt * blind[o] / total
                if allocated >= _INSTANT * fair[o] - 1e-9:
                    a[4] += dt
                a[5] += dt * s.owner_held(o, k) / total
    return [_share(o, result.weights.get(o, 1.0), *a) for o, a in acc.items()]


def _by_class(s, k: int, weights: dict[str, float], total: float) -> dict[str, float]:
    demand = {(c, o): s.held_gpus[(o, c)][k] + s.waiting_gpus[(o, c)][k] for o in s.owners for c in s.classes}
    fair = class_entitlements(demand, weights, total)
    return {o: fair.get(o, 0.0) for o in s.owners}


def _share(owner: str, weight: float, t: float, share: float, fair: float, blind: float,
           at_90: float, running: float) -> OwnerShare:
    if t <= 0:
        return OwnerShare(owner=owner, weight=weight, waiting_s=0.0, share=0.0, entitled=0.0, ratio=1.0,
                          entitled_any_class=0.0, ratio_any_class=1.0)
    share, fair, blind, running = share / t, fair / t, blind / t, running / t
    return OwnerShare(owner=owner, weight=weight, waiting_s=t, share=share, entitled=fair,
                      ratio=share / fair if fair > 0 else 1.0, entitled_any_class=blind,
                      ratio_any_class=share / blind if blind > 0 else 1.0, time_at_90=at_90 / t,
                      share_running=running, ratio_running=running / fair if fair > 0 else 1.0)
