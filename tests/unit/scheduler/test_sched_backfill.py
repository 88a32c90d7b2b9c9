"""EASY backfill: later jobs pass a blocked one only if they do not delay its reservation."""

from __future__ import annotations

import math

from sched_helpers import gpus, job, node, running, started

from llmos.scheduler import POLICIES, Snapshot, schedule

# Isolate backfill: no classes, no fair share or preemption in the way.
BACKFILL = POLICIES["full"].model_copy(update={"preemption": False, "fair_share": False})


def _snapshot(estimate_s: float | None, queued) -> Snapshot:
    # n1 has 6 of 8 GPUs busy until t=100 (if the estimate is known); the head needs all 8 of n1.
    busy = running(job("busy", 6, runtime_estimate_s=estimate_s), ("n1", gpus(0, 6)), start_s=0.0)
    return Snapshot.build(10.0, [node("n1")], [busy], queued)


def test_short_job_backfills_and_long_job_does_not() -> None:
    head = job("head", 8, submit_s=1.0)
    short = job("short", 2, submit_s=2.0, runtime_estimate_s=50.0)  # ends at 60 <= 100
    long_ = job("long", 2, submit_s=3.0, runtime_estimate_s=500.0)  # would hold 2 GPUs past 100
    decision = schedule(_snapshot(100.0, [head, long_, short]), BACKFILL)
    assert decision.reservation.job_id == "head" and decision.reservation.start_s == 100.0
    assert set(started(decision)) == {"short"}


def test_without_estimates_backfill_is_conservative() -> None:
    head = job("head", 8, submit_s=1.0)
    short = job("short", 2, submit_s=2.0, runtime_estimate_s=50.0)
    decision = schedule(_snapshot(None, [head, short]), BACKFILL)
    assert decision.reservation.start_s == math.inf
    assert decision.starts == ()  # the only idle GPUs are the ones the head waits for


def test_jobs_on_capacity_the_head_does_not_need_still_backfill() -> None:
    busy = running(job("busy", 6), ("n1", gpus(0, 6)))  # no estimate: never ends, as far as we know
    head = job("head", 8, submit_s=1.0)
    other = job("other", 4, submit_s=2.0)  # no estimate either
    decision = schedule(Snapshot.build(10.0, [node("n1"), node("n2", 4)], [busy], [head, other]), BACKFILL)
    assert started(decision) == {"other": (("n2", gpus(0, 4)),)}


def test_without_backfill_nothing_passes_the_blocked_head() -> None:
    no_backfill = BACKFILL.model_copy(update={"backfill": False})
    head = job("head", 8, submit_s=1.0)
    short = job("short", 2, submit_s=2.0, runtime_estimate_s=50.0)
    decision = schedule(_snapshot(100.0, [head, short]), no_backfill)
    assert decision.starts == () and decision.reservation is None


def test_backfill_never_delays_the_head_in_replay() -> None:
    """Drive rounds by hand: the head must start at its reservation time, not later."""
    from llmos.sim import TraceJob, simulate

    trace = [TraceJob(job("busy", 6, submit_s=0.0, runtime_estimate_s=100.0), 100.0),
             TraceJob(job("head", 8, submit_s=1.0, runtime_estimate_s=50.0), 50.0)]
    trace += [TraceJob(job(f"filler{i}", 1, submit_s=2.0 + i, runtime_estimate_s=80.0 + 40 * i),
                       80.0 + 40 * i) for i in range(6)]
    result = simulate(trace, [node("n1")], BACKFILL)
    assert result.outcomes["head"].first_start_s == 100.0
    assert result.outcomes["filler0"].first_start_s == 2.0  # ends at 82: fits before the head
