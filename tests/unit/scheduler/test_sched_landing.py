"""Repacking on a full cluster: a moved job lands where the blocked job may preempt anyway.

With a higher-class job on every node, an owner below its share could never run a whole-node
job: it may not preempt the higher class, and a move needs somewhere to land. The moved job may
land on capacity the blocked job frees by fair-share reclaim on another node.
"""

from __future__ import annotations

from sched_helpers import gpus, job, node, running

from llmos.scheduler import POLICIES, Snapshot, schedule
from llmos.scheduler._victims import Victims

FULL = POLICIES["full"]
HIGH = 2


def _cluster(n2_jobs: list) -> list:
    """n1 and n2 full: on each a 1-GPU high-class job of `big`, and 7 GPUs of its normal jobs."""
    return [running(job("h1", 1, owner="big", priority=HIGH, checkpoint_s=10), ("n1", (0,))),
            running(job("b1", 4, owner="big", checkpoint_s=30), ("n1", gpus(1, 4))),
            running(job("b2", 3, owner="big", checkpoint_s=20), ("n1", gpus(5, 3))), *n2_jobs]


def test_a_moved_job_lands_where_the_blocked_job_reclaims() -> None:
    n2 = [running(job("h2", 1, owner="big", priority=HIGH, checkpoint_s=40), ("n2", (0,))),
          running(job("b3", 4, owner="big", checkpoint_s=50), ("n2", gpus(1, 4))),
          running(job("b4", 3, owner="big", checkpoint_s=25), ("n2", gpus(5, 3)))]
    # `small` holds nothing and is entitled to 7 of the 16 GPUs; its job needs a whole node.
    snap = Snapshot.build(10_000.0, [node("n1"), node("n2")], _cluster(n2), [job("whole", 8, owner="small")])
    decision = schedule(snap, FULL)
    reasons = {p.job_id: p.reason.split(":")[0] for p in decision.preempts}
    # n1 is emptied: b1 and b2 reclaimed, h1 moved; h1 lands on n2 in place of b4, the cheapest
    # job there that frees a GPU (3 GPUs x 25 s, against b3's 4 x 50 s).
    assert reasons == {"b1": "reclaim", "b2": "reclaim", "h1": "repack", "b4": "reclaim"}
    assert decision.starts == ()
    [claim] = decision.claims
    assert claim.job_id == "whole" and {slot.node for slot in claim.placement} == {"n1"}


def test_no_move_without_somewhere_to_land() -> None:
    # On n2 nothing may be preempted for `small` (a pinned job): h1 has nowhere to go, so nothing
    # moves and nothing is preempted in vain.
    n2 = [running(job("pinned", 8, owner="big", preemptible=False), ("n2", gpus(0, 8)))]
    snap = Snapshot.build(10_000.0, [node("n1"), node("n2")], _cluster(n2), [job("whole", 8, owner="small")])
    decision = schedule(snap, FULL)
    assert decision.preempts == () and decision.starts == () and decision.claims == ()


def test_budgets_left_after_a_plan() -> None:
    a1, a2 = running(job("a1", 2, owner="a"), ("n1", gpus(0, 2))), running(job("a2", 2, owner="a"), ("n1", gpus(2, 2)))
    b1 = running(job("b1", 1, owner="b"), ("n1", (4,)), start_s=100.0)
    victims = Victims([a1, a2, b1], {"a1": "reclaim", "a2": "reclaim", "b1": "reclaim"},
                      budget={"a": 0.3, "b": 0.2}, surplus={"b": 0.1},
                      share={"a1": 0.25, "a2": 0.25, "b1": 0.0625}, fresh={"b1"})
    assert victims.affordable([a1]) and not victims.affordable([a1, a2])
    left = victims.left_after([a1], {"a1"})
    assert [rj.job.job_id for rj in left.ranked] == ["a2", "b1"]
    assert left.budget["a"] == 0.3 - 0.25 and not left.affordable([a2]) and left.affordable([b1])
    assert victims.left_after([b1], {"b1"}).surplus["b"] == 0.1 - 0.0625
