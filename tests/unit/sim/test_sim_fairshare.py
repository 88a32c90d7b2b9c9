"""The fair-share figures of the report, on hand-made time series and a two-job replay."""

from __future__ import annotations

import pytest

from llmos.scheduler import POLICIES, Job, Node, Resources
from llmos.sim import Samples, SimResult, TraceJob, simulate, summarize
from llmos.sim._report import owner_shares


def _gpus(n: float) -> Resources:
    return Resources(0, 0, n)


def node(name: str) -> Node:
    return Node(name, 32, 128, 8)


def job(job_id: str, gpus: int, owner: str, submit_s: float, checkpoint_s: float = 0.0) -> Job:
    return Job(job_id, owner, submit_s, Resources(4 * gpus, 16 * gpus, gpus), checkpoint_s=checkpoint_s)


def test_share_ratio_and_the_instant_wise_figure() -> None:
    # 8 GPUs, no classes. 0-100 s: `a` holds 4 of its 4 entitled and waits for 4 more.
    # 100-300 s: `a` holds 2, still entitled to 4 (`b` holds 6 and wants no more).
    s = Samples(["a", "b"], [1])
    s.add(0.0, 8, {(1, "a"): _gpus(4), (1, "b"): _gpus(4)}, {(1, "a"): _gpus(4)})
    s.add(100.0, 8, {(1, "a"): _gpus(2), (1, "b"): _gpus(6)}, {(1, "a"): _gpus(6)})
    s.add(300.0, 8, {(1, "a"): _gpus(8)}, {})
    result = SimResult("test", False, 8, {}, [], [], s, {"a": 1.0, "b": 1.0}, [], [], 0, 0.0, 0.0)
    a, b = owner_shares(result)
    assert a.waiting_s == 300.0 and b.waiting_s == 0.0
    assert a.share == pytest.approx((4 * 100 + 2 * 200) / (8 * 300))
    assert a.entitled == pytest.approx(0.5) and a.ratio == pytest.approx(2 / 3)
    # Held >= 0.9x the entitlement for the first 100 of its 300 waiting seconds.
    assert a.time_at_90 == pytest.approx(1 / 3)
    assert b.time_at_90 == 1.0 and b.ratio == 1.0


def test_claimed_capacity_counts_for_the_claimant() -> None:
    # 8 GPUs. 0-100 s: `a` waits with 2 of its 4 entitled held; 100-200 s: 2 more GPUs being
    # freed by `b`'s checkpoint are claimed for `a`: allocated 4, while `b` still holds them.
    s = Samples(["a", "b"], [1])
    s.add(0.0, 8, {(1, "a"): _gpus(2), (1, "b"): _gpus(6)}, {(1, "a"): _gpus(2)})
    s.add(100.0, 8, {(1, "a"): _gpus(2), (1, "b"): _gpus(6)}, {(1, "a"): _gpus(2)},
          {(1, "a"): 4.0, (1, "b"): 4.0})
    s.add(200.0, 8, {(1, "a"): _gpus(4), (1, "b"): _gpus(4)}, {})
    result = SimResult("test", False, 8, {}, [], [], s, {"a": 1.0, "b": 1.0}, [], [], 0, 0.0, 0.0)
    a, _ = owner_shares(result)
    assert a.waiting_s == 200.0 and a.entitled == pytest.approx(0.5)
    assert a.ratio == pytest.approx((2 * 100 + 4 * 100) / (4 * 200))
    assert a.ratio_running == pytest.approx(0.5)
    assert a.time_at_90 == pytest.approx(0.5)


def test_a_reclaim_counts_for_the_owner_it_was_made_for_from_the_preemption_on() -> None:
    # `x` runs a whole-node job on each of two nodes; at 1,000 s `y` submits one and reclaims a
    # node (it is entitled to half the cluster). `y` waits the 60 s of `x`'s checkpoint, the node
    # allocated to it all along.
    trace = [TraceJob(job(f"x{i}", 8, owner="x", checkpoint_s=60 + i, submit_s=0.0), 50_000.0) for i in range(2)]
    trace.append(TraceJob(job("y8", 8, owner="y", submit_s=1000.0), 500.0))
    result = simulate(trace, [node("n1"), node("n2")], POLICIES["full"])
    assert result.preemptions == 1 and result.outcomes["y8"].first_start_s == 1060.0
    s = result.samples
    k = s.times_s.index(1000.0)
    assert (s.owner_held("x", k), s.owner_held("y", k)) == (16.0, 0.0)
    assert (s.owner_allocated("x", k), s.owner_allocated("y", k)) == (8.0, 8.0)
    y = next(o for o in summarize(result).owners if o.owner == "y")
    assert y.waiting_s == 60.0 and y.ratio == pytest.approx(1.0) and y.ratio_running == 0.0
