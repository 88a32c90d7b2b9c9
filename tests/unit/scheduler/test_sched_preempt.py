"""Preemption: the cheapest set that frees what is needed; never a non-preemptible job."""

from __future__ import annotations

from sched_helpers import gpus, job, node, running, started

from llmos.scheduler import POLICIES, Snapshot, schedule

PRIORITY = POLICIES["priority"]


def _low(job_id: str, gpu_count: int, checkpoint_s: float, **kw):
    return job(job_id, gpu_count, owner="lo", priority=0, checkpoint_s=checkpoint_s, **kw)


def test_preemption_picks_the_least_lost_work() -> None:
    # A high job needs 4 GPUs on a full node. Freeing them by preempting the slow-checkpointing
    # 4-GPU job loses 4 x 300 = 1200 GPU-s; the two 2-GPU jobs lose 2 x 60 + 2 x 100 = 320.
    run = [running(_low("slow4", 4, 300), ("n1", gpus(0, 4))),
           running(_low("quick2", 2, 60), ("n1", gpus(4, 2))),
           running(_low("mid2", 2, 100), ("n1", gpus(6, 2)))]
    snap = Snapshot.build(10.0, [node("n1")], run, [job("urgent", 4, owner="hi", priority=2)])
    decision = schedule(snap, PRIORITY)
    assert {p.job_id for p in decision.preempts} == {"quick2", "mid2"}
    assert all(p.reason.startswith("priority") for p in decision.preempts)


def test_preemption_prefers_one_cheap_victim_over_many() -> None:
    run = [running(_low("cheap4", 4, 10), ("n1", gpus(0, 4))),
           running(_low("a2", 2, 60), ("n1", gpus(4, 2))),
           running(_low("b2", 2, 60), ("n1", gpus(6, 2)))]
    snap = Snapshot.build(10.0, [node("n1")], run, [job("urgent", 4, owner="hi", priority=2)])
    assert {p.job_id for p in schedule(snap, PRIORITY).preempts} == {"cheap4"}


def test_non_preemptible_jobs_are_never_preempted() -> None:
    run = [running(_low("pinned", 8, 1, preemptible=False), ("n1", gpus(0, 8)))]
    snap = Snapshot.build(10.0, [node("n1")], run, [job("urgent", 8, owner="hi", priority=3)])
    decision = schedule(snap, PRIORITY)
    assert decision.preempts == () and decision.starts == ()


def test_equal_classes_do_not_preempt_each_other() -> None:
    run = [running(job("same", 8, owner="x"), ("n1", gpus(0, 8)))]
    snap = Snapshot.build(10.0, [node("n1")], run, [job("waiting", 8, owner="y")])
    assert schedule(snap, PRIORITY).preempts == ()


def test_a_preempted_job_keeps_its_place_and_resumes_with_the_work_left() -> None:
    from llmos.sim import TraceJob, simulate

    trace = [TraceJob(_low("victim", 8, 30, submit_s=0.0), 1000.0),
             TraceJob(job("urgent", 8, owner="hi", submit_s=100.0, priority=2, checkpoint_s=0), 200.0),
             TraceJob(_low("later", 8, 30, submit_s=150.0), 10.0)]
    result = simulate(trace, [node("n1")], PRIORITY)
    victim, later = result.outcomes["victim"], result.outcomes["later"]
    assert victim.preemptions == 1 and result.preemptions == 1
    assert result.outcomes["urgent"].first_start_s == 130.0  # after the victim's 30 s checkpoint
    # The victim ran 100 s of 1000 before it was stopped; it resumes at 330, before `later`.
    assert victim.end_s == 330.0 + 900.0 and later.first_start_s == victim.end_s
    assert result.lost_gpu_s == 8 * 30


def test_repack_moves_small_jobs_to_make_room() -> None:
    # Two nodes with 4 idle GPUs each: an 8-GPU job fits only if one node's small jobs move.
    run = [running(job("s1", 2, owner="x", checkpoint_s=20), ("n1", gpus(0, 2))),
           running(job("s2", 2, owner="x", checkpoint_s=20), ("n1", gpus(2, 2))),
           running(job("big", 4, owner="x", checkpoint_s=60), ("n2", gpus(0, 4)))]  # costlier to move
    snap = Snapshot.build(1000.0, [node("n1"), node("n2")], run, [job("whole", 8, owner="x")])
    decision = schedule(snap, POLICIES["fair"])
    assert {p.job_id for p in decision.preempts} == {"s1", "s2"}
    assert all(p.reason.startswith("repack") for p in decision.preempts)
    assert started(decision) == {}
    # Jobs that just (re)started are left to settle, or they could bounce back and forth.
    fresh = Snapshot.build(100.0, [node("n1"), node("n2")], run, [job("whole", 8, owner="x")])
    assert schedule(fresh, POLICIES["fair"]).preempts == ()
