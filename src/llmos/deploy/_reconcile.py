"""What the supervisor does next: a pure function from the replicas it has to the ones it wants.

One rule serves scaling, restarts and rolling updates. The deployment wants `desired` ready
replicas of the target revision (model version + settings); any other revision is old. New ones
start while the total stays within `desired + max_surge`; an old one is drained only when enough
ready ones stay behind, so a rolling update never lowers the ready count below `desired`
(max-unavailable 0); an old one not yet known to be ready counts as possibly serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["MAX_START_FAILURES", "Phase", "Plan", "ReplicaView", "reconcile", "restart_delay_s", "should_abort"]

Phase = Literal["starting", "ready", "draining"]

# A new version whose replicas die this many times in a row before any became ready is given up:
# the old version keeps serving, and the roll is reported as failed.
MAX_START_FAILURES = 3


@dataclass(frozen=True, slots=True)
class ReplicaView:
    replica_id: str
    revision: str  # the pinned model version + settings digest it serves, e.g. "sentiment/3#1a2b3c4d"
    phase: Phase
    outstanding: int = 0
    started_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Plan:
    start: int  # replicas of the target revision to start now
    drain: tuple[str, ...]  # replicas to take out of routing and stop once idle
    rolled: bool  # only target-revision replicas remain (draining ones included)


def reconcile(replicas: list[ReplicaView], target: str, desired: int, max_surge: int = 1) -> Plan:
    live = [r for r in replicas if r.phase != "draining"]
    new = [r for r in live if r.revision == target]
    old = [r for r in live if r.revision != target]
    old_ready = [r for r in old if r.phase == "ready"]
    new_ready = [r for r in new if r.phase == "ready"]
    spare = len(old_ready) + len(new_ready) - desired
    # An old replica not yet seen ready may serve already: the front learns readiness from its own
    # probes and reports it up to a tick later, so one that "is starting" here can be the only one
    # the front routes to. Drop it only once `desired` others are ready (at once, if they are).
    drain = [r.replica_id for r in old if r.phase == "starting"] if spare >= 0 else []
    kept = sum(r.phase == "starting" for r in old) - len(drain)
    for replica in sorted(old_ready, key=_drain_order)[:max(0, spare)]:
        drain.append(replica.replica_id)
    old_left = len(old_ready) - max(0, min(spare, len(old_ready)))

    start = 0
    if len(new) < desired:
        # Without old replicas to carry the traffic, start everything at once; during a roll, the
        # surge budget counts draining and kept starting ones too, as they hold their cores.
        draining = sum(r.phase == "draining" for r in replicas) + len(drain)
        room = desired + max_surge - len(new) - old_left - kept - draining if old_left else desired - len(new)
        start = max(0, min(desired - len(new), room))
    elif len(new) > desired:
        extra = sorted(new, key=lambda r: (r.phase == "ready", *_drain_order(r)))[: len(new) - desired]
        drain.extend(r.replica_id for r in extra)

    rolled = all(r.revision == target for r in replicas)
    return Plan(start=start, drain=tuple(drain), rolled=rolled)


def _drain_order(replica: ReplicaView) -> tuple[int, float]:
    # The idlest first (its drain ends soonest), then the youngest (the oldest are proven healthy).
    return replica.outstanding, -replica.started_s


def restart_delay_s(consecutive_failures: int, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Wait before replacing a replica that died: doubling per failure in a row, capped."""
    if consecutive_failures <= 0:
        return 0.0
    return min(cap_s, base_s * 2 ** (consecutive_failures - 1))


def should_abort(target_failures: int, old_ready: int) -> bool:
    """Give up a roll whose new replicas keep dying before readiness while the old ones still serve."""
    return old_ready > 0 and target_failures >= MAX_START_FAILURES
