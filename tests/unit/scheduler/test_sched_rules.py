"""One literal snapshot per rule: priority, fair share, quotas, aging, rejection, FIFO."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sched_helpers import gpus, job, node, running, started

from llmos.scheduler import (
    POLICIES,
    Job,
    Node,
    Owner,
    Quota,
    Resources,
    SchedulerError,
    Snapshot,
    decay_usage,
    entitlements,
    policy_config,
    priority_rank,
    schedule,
)

FULL = POLICIES["full"]


def test_strict_priority_lets_a_later_high_job_go_first() -> None:
    snap = Snapshot.build(10.0, [node("n1", 4)], queued=[job("old-normal", 4, submit_s=0.0),
                                                        job("new-high", 4, submit_s=9.0, priority=2)])
    for name in ("priority", "full"):
        assert set(started(schedule(snap, policy_config(name)))) == {"new-high"}


def test_fifo_ignores_classes_and_blocks_behind_its_head() -> None:
    busy = running(job("r", 4), ("n1", gpus(0, 4)), start_s=0.0)
    queued = [job("head", 8, submit_s=1.0), job("small", 1, submit_s=2.0, priority=3)]
    decision = schedule(Snapshot.build(5.0, [node("n1")], [busy], queued), POLICIES["fifo"])
    assert decision.starts == () and decision.preempts == ()


def test_weighted_fair_share_splits_by_weight() -> None:
    queued = [job(f"a{i}", 1, owner="a", submit_s=i) for i in range(6)]
    queued += [job(f"b{i}", 1, owner="b", submit_s=i) for i in range(6)]
    owners = [Owner("a", weight=2.0), Owner("b", weight=1.0)]
    decision = schedule(Snapshot.build(10.0, [node("n1", 6)], queued=queued, owners=owners), FULL)
    counts = {o: sum(s.job_id.startswith(o) for s in decision.starts) for o in "ab"}
    assert counts == {"a": 4, "b": 2}


def test_dominant_resource_fairness_reproduces_the_drf_paper_example() -> None:
    # Ghodsi et al. (NSDI 2011): 9 CPUs, 18 GB; A's tasks need <1 CPU, 4 GB>, B's <3 CPU, 1 GB>.
    # DRF gives A three tasks and B two, equalising their dominant shares (2/3 each).
    a = [Job(f"a{i}", "a", i, Resources(1, 4, 0)) for i in range(5)]
    b = [Job(f"b{i}", "b", i, Resources(3, 1, 0)) for i in range(5)]
    decision = schedule(Snapshot.build(10.0, [Node("n1", 9, 18, 0)], queued=a + b), FULL)
    ids = {s.job_id for s in decision.starts}
    assert sorted(ids) == ["a0", "a1", "a2", "b0", "b1"]


def test_decayed_usage_sends_the_recent_hog_second() -> None:
    queued = [job("hog-job", 4, owner="hog", submit_s=0.0), job("new-job", 4, owner="new", submit_s=5.0)]
    usage = {"hog": Resources(0, 0, 4.0)}  # it held half the cluster lately
    decision = schedule(Snapshot.build(10.0, [node("n1", 4)], queued=queued, usage=usage), FULL)
    assert set(started(decision)) == {"new-job"}


def test_decay_usage_halves_every_half_life() -> None:
    old = Resources(8, 64, 4)
    after = decay_usage(old, Resources(), elapsed_s=3600, half_life_s=3600)
    assert after == Resources(4, 32, 2)
    assert decay_usage(old, Resources(0, 0, 4), 10**6, 3600).gpus == pytest.approx(4)


def test_entitlements_are_max_min_fair_and_capped_by_demand() -> None:
    fair = entitlements({"a": 10, "b": 40, "c": 40}, {"a": 1, "b": 1, "c": 2}, 64)
    assert fair == pytest.approx({"a": 10, "b": 18, "c": 36})
    assert entitlements({"a": 0, "b": 5}, {}, 64) == {"a": 0.0, "b": 5}


def test_hard_cap_holds_even_on_an_idle_cluster() -> None:
    queued = [job(f"a{i}", 1, owner="a", submit_s=i) for i in range(6)]
    owners = [Owner("a", cap=Quota(gpus=2))]
    decision = schedule(Snapshot.build(0.0, [node("n1", 8)], queued=queued, owners=owners), FULL)
    assert set(started(decision)) == {"a0", "a1"}


def test_owner_borrows_idle_capacity_beyond_its_guarantee() -> None:
    queued = [job(f"a{i}", 2, owner="a", submit_s=i) for i in range(4)]
    owners = [Owner("a", guarantee=Quota(gpus=4)), Owner("b", guarantee=Quota(gpus=4))]
    decision = schedule(Snapshot.build(0.0, [node("n1", 8)], queued=queued, owners=owners), FULL)
    assert len(decision.starts) == 4


def test_reclaim_preempts_the_borrower_and_claims_its_capacity() -> None:
    owners = [Owner("a", guarantee=Quota(gpus=4)), Owner("b", guarantee=Quota(gpus=4))]
    borrowed = [running(job(f"a{i}", 2, owner="a", checkpoint_s=30), ("n1", gpus(2 * i, 2)), start_s=i)
                for i in range(4)]
    snap = Snapshot.build(100.0, [node("n1", 8)], borrowed, [job("b-needs-4", 4, owner="b", submit_s=50)],
                          owners)
    decision = schedule(snap, FULL)
    assert decision.starts == ()  # it waits for the checkpoints, which are claimed for it
    assert len(decision.preempts) == 2 and all(p.reason.startswith("reclaim") for p in decision.preempts)
    # Once the preempted jobs are stopping, the next round claims their capacity and preempts no more.
    stopping = [r if r.job.job_id not in {p.job_id for p in decision.preempts}
                else running(r.job, *[(s.node, s.gpu_indices) for s in r.placement], start_s=r.start_s,
                             stopping=True, expected_end_s=130.0) for r in borrowed]
    again = schedule(Snapshot.build(110.0, [node("n1", 8)], stopping, snap.queue[(1, "b")], owners), FULL)
    assert again.preempts == () and again.starts == ()


def test_owner_within_its_guarantee_is_not_preempted_by_another_class() -> None:
    owners = [Owner("a", guarantee=Quota(gpus=8)), Owner("b", guarantee=Quota(gpus=0))]
    held = running(job("a-low", 8, owner="a", priority=0), ("n1", gpus(0, 8)))
    snap = Snapshot.build(10.0, [node("n1", 8)], [held], [job("b-critical", 8, owner="b", priority=3)], owners)
    assert schedule(snap, FULL).preempts == ()


def test_aging_eventually_puts_a_heavy_users_job_first() -> None:
    heavy = running(job("h-run", 4, owner="heavy"), ("n1", gpus(0, 4)))
    queued = [job("heavy-old", 4, owner="heavy", submit_s=0.0), job("light-new", 4, owner="light", submit_s=3e5)]
    nodes = [node("n1", 4), node("n2", 4)]
    aging = FULL.model_copy(update={"aging_s": 86_400.0, "preemption": False})
    no_aging = aging.model_copy(update={"aging_s": None})
    snap = Snapshot.build(3e5 + 10, nodes, [heavy], queued)
    assert set(started(schedule(snap, no_aging))) == {"light-new"}
    assert set(started(schedule(snap, aging))) == {"heavy-old"}


def test_aging_counts_time_waited_not_time_since_submission() -> None:
    """A preempted job keeps its place but not credit for the time it ran: the job it was
    preempted for, waiting longer, goes first (before, the requeued job's age since submission
    outranked it and took the freed capacity straight back)."""
    heavy = running(job("h-run", 4, owner="heavy"), ("n1", gpus(0, 4)))
    aging = FULL.model_copy(update={"aging_s": 86_400.0, "preemption": False})
    requeued = replace(job("heavy-old", 4, owner="heavy", submit_s=0.0), queued_s=3e5, waited_s=60.0)
    waiting = job("light-new", 4, owner="light", submit_s=2e5)
    snap = Snapshot.build(3e5 + 10, [node("n1", 4), node("n2", 4)], [heavy], [requeued, waiting])
    assert set(started(schedule(snap, aging))) == {"light-new"}
    # Waited long enough in earlier stays, it goes first again.
    snap = Snapshot.build(3e5 + 10, [node("n1", 4), node("n2", 4)], [heavy],
                          [replace(requeued, waited_s=2.5e5), waiting])
    assert set(started(schedule(snap, aging))) == {"heavy-old"}
    with pytest.raises(SchedulerError, match="waited_s"):
        replace(requeued, waited_s=-1.0)


def test_a_job_that_can_never_fit_is_rejected_with_the_reason() -> None:
    queued = [job("huge", 16), job("wrong-type", 1, gpu_type="h100"), job("too-many", 8, workers=3), job("ok", 1)]
    decision = schedule(Snapshot.build(0.0, [node("n1"), node("n2")], queued=queued), POLICIES["fifo"])
    reasons = {r.job_id: r.reason for r in decision.rejects}
    assert "one node cannot hold" in reasons["huge"] and "h100" in reasons["wrong-type"]
    assert "the whole cluster has 16 GPUs" in reasons["too-many"]
    assert set(started(decision)) == {"ok"}


def test_unknown_policy_and_priority_names_say_what_is_allowed() -> None:
    with pytest.raises(SchedulerError, match="unknown policy") as err:
        policy_config("fastest")
    assert "fifo" in err.value.hint
    assert priority_rank("HIGH") == 2 and priority_rank("0") == 0
    with pytest.raises(SchedulerError, match="urgent"):
        priority_rank("urgent")


def test_snapshot_build_refuses_over_committed_nodes() -> None:
    a = running(job("a", 4), ("n1", gpus(0, 4)))
    b = running(job("b", 4), ("n1", gpus(2, 4)))
    with pytest.raises(SchedulerError, match="already held"):
        Snapshot.build(0.0, [node("n1")], [a, b])


def test_an_owner_below_its_fair_share_reclaims_from_one_above() -> None:
    # No quotas: `a` took the whole idle node; `b` arrives. `b`'s entitlement is half the node.
    held = [running(job(f"a{i}", 2, owner="a", checkpoint_s=30 + i), ("n1", gpus(2 * i, 2)), start_s=0.0)
            for i in range(4)]
    snap = Snapshot.build(5000.0, [node("n1")], held, [job("b0", 2, owner="b", submit_s=4000.0)])
    decision = schedule(snap, FULL)
    assert [p.job_id for p in decision.preempts] == ["a0"]  # one job, the cheapest to checkpoint
    assert decision.preempts[0].reason.startswith("reclaim")
    # A job that only just started is left to settle before it can be reclaimed.
    fresh = [running(r.job, *[(s.node, s.gpu_indices) for s in r.placement], start_s=4900.0) for r in held]
    assert schedule(Snapshot.build(5000.0, [node("n1")], fresh, snap.queue[(1, "b")]), FULL).preempts == ()
