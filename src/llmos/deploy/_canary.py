"""Canary promotion: whether a new version, serving a share of the traffic, moves on. Pure.

`decide_canary` takes the figures the front measured during the current step (the new version's
and the current one's), the bounds of the spec's `canary:` section and the step, and says hold
(not enough seen yet), next (the next, larger share), promote (the last step held: the new version
becomes the deployment's and the old one drains as in a rolling update) or rollback (a bound was
crossed: all traffic back to the current version, the new replicas drained). The reason names the
figures and the bound, for `llmos deploy show` and the audit log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from llmos.deploy._reconcile import MAX_START_FAILURES
from llmos.deploy._version_figures import VersionFigures
from llmos.spec import CanarySpec

__all__ = ["CanaryDecision", "CanaryFigures", "canary_replicas", "decide_canary", "parse_canary_percent"]

Action = Literal["hold", "next", "promote", "rollback"]


@dataclass(frozen=True)
class CanaryFigures:
    canary: VersionFigures  # the new version, over the current step
    stable: VersionFigures  # the current version, over the same step
    step_age_s: float  # how long the current step has run
    start_failures: int = 0  # new replicas that exited before they were ready, in a row


@dataclass(frozen=True)
class CanaryDecision:
    action: Action
    reason: str


def decide_canary(figures: CanaryFigures, spec: CanarySpec, step: int) -> CanaryDecision:
    """What to do at step `step` (0-based index into `spec.steps`) given the step's figures."""
    if figures.start_failures >= MAX_START_FAILURES:
        return CanaryDecision("rollback", f"{figures.start_failures} replicas of the new version exited "
                                          "before they were ready")
    crossed = _crossed(figures, spec)
    if crossed:
        return CanaryDecision("rollback", "; ".join(crossed))
    c, need = figures.canary, spec.min_requests
    waiting = []
    if c.requests < need:
        waiting.append(f"{c.requests} of {need} requests")
    if spec.max_disagreement is not None and 0 < c.compared < need:
        waiting.append(f"{c.compared} of {need} compared answers")
    if figures.step_age_s < spec.interval_s:
        waiting.append(f"{figures.step_age_s:.0f} of {spec.interval_s:g} s")
    where = f"step {step + 1} of {len(spec.steps)} ({spec.steps[step]:g}%)"
    if waiting:
        return CanaryDecision("hold", f"{where}: watching, {', '.join(waiting)}")
    summary = _summary(figures)
    if step + 1 < len(spec.steps):
        return CanaryDecision("next", f"{where} held ({summary}): to {spec.steps[step + 1]:g}%")
    return CanaryDecision("promote", f"{where} held ({summary}): promoted")


def _crossed(f: CanaryFigures, spec: CanarySpec) -> list[str]:
    """The bounds the new version crossed, each judged once it has `min_requests` of its sample."""
    c, s, need = f.canary, f.stable, spec.min_requests
    out = []
    if c.requests >= need and c.error_rate > spec.max_error_rate:
        out.append(f"error rate {c.error_rate:.1%} ({c.errors} of {c.requests} requests) above "
                   f"max_error_rate {spec.max_error_rate:.1%}")
    if spec.max_p95_ms is not None and c.requests >= need and c.p95_ms is not None and c.p95_ms > spec.max_p95_ms:
        out.append(f"p95 latency {c.p95_ms:.0f} ms above max_p95_ms {spec.max_p95_ms:g}")
    if spec.max_latency_ratio is not None and c.requests >= need and s.requests >= need \
            and c.p95_ms is not None and s.p95_ms is not None and c.p95_ms > spec.max_latency_ratio * s.p95_ms:
        out.append(f"p95 latency {c.p95_ms:.0f} ms is {c.p95_ms / s.p95_ms:.2f}x the current version's "
                   f"{s.p95_ms:.0f} ms, above max_latency_ratio {spec.max_latency_ratio:g}")
    if spec.max_disagreement is not None and c.compared >= need and c.disagreement > spec.max_disagreement:
        out.append(f"{c.disagreement:.1%} of compared answers ({c.differed} of {c.compared}) differ from the "
                   f"current version, above max_disagreement {spec.max_disagreement:.1%}")
    return out


def _summary(f: CanaryFigures) -> str:
    c = f.canary
    parts = [f"{c.requests} requests", f"error rate {c.error_rate:.1%}"]
    if c.p95_ms is not None:
        parts.append(f"p95 {c.p95_ms:.0f} ms")
    if c.compared:
        parts.append(f"disagreement {c.disagreement:.1%}")
    return ", ".join(parts)


def canary_replicas(desired: int, weight: float) -> int:
    """Replicas of the new version for a `weight` share of a deployment that wants `desired`: at
    least one, all `desired` at 100%."""
    return max(1, min(desired, math.ceil(desired * weight - 1e-9)))


def parse_canary_percent(text: str) -> list[float]:
    """`--canary 10%` as steps [10, 50, 100]; `--canary 5,25,100` as given. ValueError if not."""
    parts = [p.strip().removesuffix("%") for p in text.split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected a percent like 10% or steps like 10,50,100, got {text!r}") from None
    if len(values) == 1:
        first = values[0]
        return [first, *([50.0] if first < 50 else []), *([100.0] if first < 100 else [])]
    return values
