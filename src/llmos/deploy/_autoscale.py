"""The autoscaler: a pure function from a load snapshot to the desired replica count.

The controller measures, this decides (SkyPilot's `evaluate_scaling` split): no clock, no I/O, so
unit tests call it with literals. Scaling up answers load quickly (one short cooldown); scaling
down waits until the load has stayed comfortably low for the whole downscale cooldown, because a
replica that was stopped too early costs a cold start when the load comes back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ReplicaLoad", "ScaleDecision", "ScalingConfig", "ScalingSnapshot", "decide_replicas"]


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    """One ready replica over the recent window: mean outstanding requests (queued + in flight,
    as the front router counts them) and the p95 latency of the requests it finished (None: none)."""

    outstanding: float
    p95_ms: float | None = None


@dataclass(frozen=True, slots=True)
class ScalingConfig:
    min_replicas: int
    max_replicas: int
    target_outstanding: float
    max_p95_ms: float | None = None
    upscale_cooldown_s: float = 10.0
    downscale_cooldown_s: float = 60.0
    # Scale down only when the remaining replicas would each carry at most this share of the target:
    # without the margin, a load just under the target flaps between n and n-1 replicas.
    downscale_headroom: float = 0.7


@dataclass(frozen=True, slots=True)
class ScalingSnapshot:
    loads: tuple[ReplicaLoad, ...]  # the ready replicas only: starting ones have no load to show
    desired: int  # the count the controller currently aims for (ready + starting)
    last_scale_up_s: float | None = None
    low_since_s: float | None = None  # when the load went comfortably low, from the previous decision


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    desired: int
    reason: str
    low_since_s: float | None  # pass back in the next snapshot


def decide_replicas(snapshot: ScalingSnapshot, config: ScalingConfig, now: float) -> ScaleDecision:
    """The replica count to aim for now, within [min_replicas, max_replicas], with the reason."""
    current = snapshot.desired
    bounded = min(max(current, config.min_replicas), config.max_replicas)
    if bounded != current:
        return ScaleDecision(bounded, f"desired {current} is outside [{config.min_replicas}, "
                                      f"{config.max_replicas}]", None)
    if not snapshot.loads:
        return ScaleDecision(current, "no ready replica to measure yet", None)

    total = sum(load.outstanding for load in snapshot.loads)
    # Sized on the desired count, not the ready one: replicas still starting will take load soon,
    # and counting only the ready ones would scale up again for every replica that is on its way.
    per_replica = total / current
    slow = _mostly_slow(snapshot.loads, config.max_p95_ms)
    if per_replica > config.target_outstanding or slow:
        want = max(current + 1, math.ceil(total / config.target_outstanding))
        want = min(want, config.max_replicas)
        why = (f"p95 latency above {config.max_p95_ms:g} ms" if slow and per_replica <= config.target_outstanding
               else f"{per_replica:.2f} outstanding per replica > target {config.target_outstanding:g}")
        if want == current:
            return ScaleDecision(current, f"{why}, but already at max_replicas {config.max_replicas}", None)
        if snapshot.last_scale_up_s is not None and now - snapshot.last_scale_up_s < config.upscale_cooldown_s:
            wait_s = config.upscale_cooldown_s - (now - snapshot.last_scale_up_s)
            return ScaleDecision(current, f"{why}; upscale cooldown, {wait_s:.1f} s left", None)
        return ScaleDecision(want, f"scale up {current} -> {want}: {why}", None)

    want = max(config.min_replicas, math.ceil(total / (config.target_outstanding * config.downscale_headroom)))
    if want >= current or not _fast_enough(snapshot.loads, config):
        return ScaleDecision(current, f"{per_replica:.2f} outstanding per replica, within target", None)
    low_since = now if snapshot.low_since_s is None else snapshot.low_since_s
    if now - low_since < config.downscale_cooldown_s:
        wait_s = config.downscale_cooldown_s - (now - low_since)
        return ScaleDecision(current, f"load low ({per_replica:.2f} per replica); scale down to {want} "
                                      f"in {wait_s:.1f} s if it stays low", low_since)
    return ScaleDecision(want, f"scale down {current} -> {want}: {per_replica:.2f} outstanding per replica "
                               f"for {config.downscale_cooldown_s:g} s", None)


def _mostly_slow(loads: tuple[ReplicaLoad, ...], max_p95_ms: float | None) -> bool:
    # A majority, so that one replica on a slow start does not scale the whole deployment.
    measured = [load.p95_ms for load in loads if load.p95_ms is not None]
    if max_p95_ms is None or not measured:
        return False
    return 2 * sum(p95 > max_p95_ms for p95 in measured) > len(measured)


def _fast_enough(loads: tuple[ReplicaLoad, ...], config: ScalingConfig) -> bool:
    if config.max_p95_ms is None:
        return True
    return all(load.p95_ms is None or load.p95_ms <= config.max_p95_ms * config.downscale_headroom
               for load in loads)
