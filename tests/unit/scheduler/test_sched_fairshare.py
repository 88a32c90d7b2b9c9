"""Fair share held over time: real-demand entitlements, order by fraction of entitlement, owed
share, reclaim budgets charged per plan, and settling that protects only what could bounce."""

from __future__ import annotations

import math

import pytest
from sched_helpers import gpus, job, node, running, started

from llmos.scheduler import (
    POLICIES,
    Resources,
    Snapshot,
    accrue_owed,
    fair_entitlements,
    schedule,
    update_owed,
)

FULL = POLICIES["full"]
NO_PREEMPTION = FULL.model_copy(update={"preemption": False})


def test_entitlement_is_the_max_min_share_of_real_demand() -> None:
    # 16 GPUs: `small` holds 1 and queues 1, `big` holds 8 and queues 16. `small` is entitled to
    # its 2, not half the cluster; `big` to the rest. Preempting a job of `big` moves it from
    # held to queued and changes neither entitlement.
    total = Resources(64, 256, 16)
    held = {(1, "small"): Resources(1, 4, 1), (1, "big"): Resources(8, 32, 8)}
    queued = {(1, "small"): Resources(1, 4, 1), (1, "big"): Resources(16, 64, 16)}
    fair = fair_entitlements(held, queued, {}, total)
    assert fair == pytest.approx({"small": 2 / 16, "big": 14 / 16})
    moved = {(1, "small"): held[(1, "small")], (1, "big"): Resources(4, 16, 4)}
    requeued = {**queued, (1, "big"): Resources(20, 80, 20)}
    assert fair_entitlements(moved, requeued, {}, total) == pytest.approx(fair)


def test_the_owner_furthest_below_its_entitlement_goes_first() -> None:
    # 24 GPUs, one idle. `small` holds 3 of its 4 entitled; `big` holds 5 of its 10; `other`
    # holds 15 (entitled to 10). DRF standing alone would send `small` first (3 < 5 GPUs held);
    # measured against entitlements `big` is further below (0.5 vs 0.75), so it gets the GPU.
    run = [running(job(f"s{i}", 1, owner="small"), ("n1", (i,))) for i in range(3)]
    run += [running(job("o1", 4, owner="other"), ("n1", gpus(3, 4))),
            running(job("b1", 4, owner="big"), ("n2", gpus(0, 4))),
            running(job("b2", 1, owner="big"), ("n2", (4,))),
            running(job("o2", 3, owner="other"), ("n2", gpus(5, 3))),
            running(job("o3", 8, owner="other"), ("n3", gpus(0, 8)))]
    queued = [job("small-next", 1, owner="small", submit_s=1.0)]
    queued += [job(f"big-next{i}", 1, owner="big", submit_s=2.0 + i) for i in range(20)]
    snap = Snapshot.build(100.0, [node("n1"), node("n2"), node("n3")], run, queued)
    assert set(started(schedule(snap, NO_PREEMPTION))) == {"big-next0"}


def test_owed_share_decays_with_the_half_life() -> None:
    assert accrue_owed(0.5, 0.0, 3600, 3600) == pytest.approx(0.25)
    # A constant gap accrues towards gap x half_life / ln 2, the decayed integral's limit.
    assert accrue_owed(0.0, 0.1, 1e9, 3600) == pytest.approx(0.1 * 3600 / math.log(2))
    assert accrue_owed(0.3, 0.1, 100, 0) == 0.0
    # An owner at its entitlement accrues nothing; one above it accrues a credit (negative).
    total = Resources(32, 128, 8)
    held = {(1, "a"): Resources(16, 64, 4), (1, "b"): Resources(16, 64, 4)}
    queued = {(1, "a"): Resources(8, 32, 2)}
    assert update_owed({}, held, queued, {}, total, 600, 3600) == {}
    alone = {(1, "a"): Resources(8, 32, 2), (1, "b"): Resources(24, 96, 6)}
    owed = update_owed({}, alone, {(1, "a"): Resources(16, 64, 4)}, {}, total, 600, 3600)
    assert owed["a"] > 0 > owed["b"] and owed["a"] == pytest.approx(-owed["b"])


def test_an_owner_owed_share_reclaims_beyond_its_instant_entitlement() -> None:
    # One node: `a` and `b` hold 4 GPUs each, their instant entitlements. `a` queues 2 more.
    # Nothing is unfair now, but `a` was kept short lately and `b` held more than its share:
    # with that owed, `a` takes two of `b`'s 1-GPU jobs (the cheapest to checkpoint).
    run = [running(job("a4", 4, owner="a"), ("n1", gpus(0, 4)))]
    run += [running(job(f"b{i}", 1, owner="b", checkpoint_s=10 + i), ("n1", (4 + i,))) for i in range(4)]
    queued = [job("a-next", 2, owner="a", submit_s=50.0)]
    horizon_s = FULL.debt_horizon_s
    owed = {"a": 0.25 * horizon_s, "b": -0.25 * horizon_s}
    snap = Snapshot.build(10_000.0, [node("n1")], run, queued)
    assert schedule(snap, FULL).preempts == ()
    decision = schedule(Snapshot.build(10_000.0, [node("n1")], run, queued, owed=owed), FULL)
    assert [p.job_id for p in decision.preempts] == ["b0", "b1"]
    assert all(p.reason.startswith("reclaim") for p in decision.preempts)
    assert schedule(Snapshot.build(10_000.0, [node("n1")], run, queued, owed=owed),
                    FULL.model_copy(update={"debt_horizon_s": None})).preempts == ()


def test_reclaim_budget_is_charged_to_the_plan_not_to_every_candidate() -> None:
    # 16 GPUs. Entitlements: `c` its 3, `a` and `b` 6.5 each. `a` holds 4 and needs 4 more on
    # one node; `b` holds 9 and may lose 5 (keeping 4/6.5 of its share, as much as `a` has now).
    # `b`'s cheapest jobs are three 1-GPU ones on n1, where `a` cannot fit: charging them to
    # the budget first would leave 2 GPUs, too few for the 4-GPU job that makes room on n2.
    run = [running(job(f"b-quick{i}", 1, owner="b", checkpoint_s=5), ("n1", (i,))) for i in range(3)]
    run += [running(job("a-held", 4, owner="a"), ("n1", gpus(3, 4))),
            running(job("c-pinned1", 1, owner="c", preemptible=False), ("n1", (7,))),
            running(job("b-big", 4, owner="b", checkpoint_s=60), ("n2", gpus(0, 4))),
            running(job("b-two", 2, owner="b", checkpoint_s=60), ("n2", gpus(4, 2))),
            running(job("c-pinned2", 2, owner="c", preemptible=False), ("n2", gpus(6, 2)))]
    queued = [job("a-next", 4, owner="a", submit_s=10.0), job("b-more", 8, owner="b", submit_s=20.0)]
    snap = Snapshot.build(10_000.0, [node("n1"), node("n2")], run, queued)
    decision = schedule(snap, FULL)
    assert [p.job_id for p in decision.preempts] == ["b-big"]
    assert decision.preempts[0].reason.startswith("reclaim")


def test_fresh_jobs_of_an_owner_left_above_its_entitlement_may_be_reclaimed() -> None:
    # `a` took a whole idle node minutes ago; `b` and `c` queue. Entitlements: `b` 2 (its
    # demand), `c` 1, `a` the other 5. Taking 1-GPU jobs that have not settled from `a` leaves
    # it above 5, so it could not reclaim them back: no bounce, no need to wait.
    run = [running(job(f"a{i}", 1, owner="a", checkpoint_s=20 + i), ("n1", (i,)), start_s=4900.0)
           for i in range(8)]
    queued = [job("b0", 1, owner="b", submit_s=4950.0), job("b1", 1, owner="b", submit_s=4951.0),
              job("c0", 1, owner="c", submit_s=4952.0)]
    decision = schedule(Snapshot.build(5000.0, [node("n1")], run, queued), FULL)
    assert len(decision.preempts) == 2 and all(p.reason.startswith("reclaim") for p in decision.preempts)
    # Down to exactly its entitlement, the rest wait to settle (the existing rule).
    assert {p.job_id for p in decision.preempts} <= {"a0", "a1", "a2"}
