"""The autoscaler as a pure function: literals in, a count and a reason out; no clock."""

from __future__ import annotations

from llmos.deploy import ReplicaLoad, ScalingConfig, ScalingSnapshot, decide_replicas

CONFIG = ScalingConfig(min_replicas=1, max_replicas=4, target_outstanding=4.0, max_p95_ms=None,
                       upscale_cooldown_s=10, downscale_cooldown_s=60)


def snap(*outstanding: float, desired: int | None = None, last_up: float | None = None,
         low_since: float | None = None, p95: float | None = None) -> ScalingSnapshot:
    loads = tuple(ReplicaLoad(o, p95) for o in outstanding)
    return ScalingSnapshot(loads, desired if desired is not None else len(loads), last_up, low_since)


def test_holds_within_target():
    decision = decide_replicas(snap(3.0, 4.0), CONFIG, now=100)
    assert decision.desired == 2 and "within target" in decision.reason


def test_scales_up_to_the_count_the_load_needs():
    # 2 replicas with 9 and 11 outstanding: 20 / 4 = 5 replicas wanted, capped at max 4.
    decision = decide_replicas(snap(9.0, 11.0), CONFIG, now=100)
    assert decision.desired == 4
    assert "scale up 2 -> 4" in decision.reason and "10.00 outstanding per replica" in decision.reason


def test_scales_up_at_least_one_when_just_above_target():
    assert decide_replicas(snap(4.5), CONFIG, now=100).desired == 2


def test_upscale_cooldown_holds_then_releases():
    held = decide_replicas(snap(9.0, last_up=95.0), CONFIG, now=100)
    assert held.desired == 1 and "cooldown, 5.0 s left" in held.reason
    assert decide_replicas(snap(9.0, last_up=90.0), CONFIG, now=100).desired == 3


def test_already_at_max_says_so():
    decision = decide_replicas(snap(9.0, 9.0, 9.0, 9.0), CONFIG, now=100)
    assert decision.desired == 4 and "already at max_replicas 4" in decision.reason


def test_starting_replicas_count_towards_capacity():
    # One ready replica with 6 outstanding while a second one starts: 6 / 2 = 3 per replica, no new scale-up.
    assert decide_replicas(snap(6.0, desired=2), CONFIG, now=100).desired == 2


def test_downscale_waits_for_the_cooldown_with_low_load():
    first = decide_replicas(snap(0.5, 0.5, 0.0), CONFIG, now=100)
    assert first.desired == 3 and first.low_since_s == 100 and "in 60.0 s" in first.reason
    later = decide_replicas(snap(0.5, 0.5, 0.0, low_since=first.low_since_s), CONFIG, now=130)
    assert later.desired == 3 and later.low_since_s == 100
    done = decide_replicas(snap(0.5, 0.5, 0.0, low_since=100), CONFIG, now=160)
    assert done.desired == 1 and "scale down 3 -> 1" in done.reason and done.low_since_s is None


def test_load_back_up_resets_the_downscale_clock():
    decision = decide_replicas(snap(3.5, 3.5, low_since=100), CONFIG, now=170)
    assert decision.desired == 2 and decision.low_since_s is None


def test_downscale_keeps_headroom():
    # 3 replicas carrying 7 in total: 2 replicas would carry 3.5 each, above 0.7 x 4 = 2.8: stay at 3.
    assert decide_replicas(snap(2.0, 2.5, 2.5, low_since=0), CONFIG, now=1000).desired == 3
    # 5 in total: 2 replicas would carry 2.5 each, below 2.8: go down to 2.
    assert decide_replicas(snap(2.0, 2.0, 1.0, low_since=0), CONFIG, now=1000).desired == 2


def test_never_below_min():
    config = ScalingConfig(2, 4, 4.0, downscale_cooldown_s=0)
    assert decide_replicas(snap(0.0, 0.0, 0.0), config, now=1).desired == 2


def test_out_of_bounds_desired_is_clamped_first():
    config = ScalingConfig(2, 3, 4.0)
    assert decide_replicas(snap(0.0, desired=1), config, now=1).desired == 2
    clamped = decide_replicas(snap(50.0, 50.0, 50.0, 50.0, desired=5), config, now=1)
    assert clamped.desired == 3 and "outside [2, 3]" in clamped.reason


def test_no_ready_replica_means_no_signal():
    decision = decide_replicas(ScalingSnapshot((), desired=2, low_since_s=5.0), CONFIG, now=100)
    assert decision.desired == 2 and decision.low_since_s is None and "no ready replica" in decision.reason


def test_latency_trigger_needs_a_majority_of_slow_replicas():
    config = ScalingConfig(1, 4, 4.0, max_p95_ms=200)
    one_slow = ScalingSnapshot((ReplicaLoad(1.0, 500.0), ReplicaLoad(1.0, 50.0), ReplicaLoad(1.0, 60.0)), 3)
    assert decide_replicas(one_slow, config, now=100).desired == 3
    most_slow = ScalingSnapshot((ReplicaLoad(1.0, 500.0), ReplicaLoad(1.0, 300.0), ReplicaLoad(1.0, None)), 3)
    decision = decide_replicas(most_slow, config, now=100)
    assert decision.desired == 4 and "p95 latency above 200 ms" in decision.reason


def test_slowish_latency_blocks_downscale():
    config = ScalingConfig(1, 4, 4.0, max_p95_ms=200, downscale_cooldown_s=0)
    snapshot = ScalingSnapshot((ReplicaLoad(0.0, 180.0), ReplicaLoad(0.0, 190.0)), 2)
    assert decide_replicas(snapshot, config, now=100).desired == 2
    fast = ScalingSnapshot((ReplicaLoad(0.0, 20.0), ReplicaLoad(0.0, 30.0)), 2)
    assert decide_replicas(fast, config, now=100).desired == 1
