"""What the front measures per model revision, for a canary's verdict.

The front keeps running totals per revision (requests, failures, a latency histogram, mirrored
answers compared and how many got another label) and reports them with its replica report. The
controller takes the totals when a canary step begins and judges the step on the difference
(`window`): no clock inside, and a report lost or read twice changes nothing.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["LATENCY_BOUNDS_MS", "VersionCounts", "VersionFigures", "p95_ms", "window"]

# Histogram bucket upper bounds, 1 ms to about 70 s, each 25% above the one before: a p95 read
# from it is at most 25% high, fine enough to compare two versions or hold a bound.
LATENCY_BOUNDS_MS = tuple(round(1.25 ** k, 3) for k in range(51))


@dataclass
class VersionCounts:
    """Running totals of one revision since the front started."""

    requests: int = 0  # answered, or failed at the front
    errors: int = 0  # answered 5xx, or failed at the front (refused, broke before answering)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))  # last: above all
    compared: int = 0  # answers (one per input) of mirrored classify requests compared with the current version
    differed: int = 0  # ... whose label differed

    def answered(self, status: int, latency_s: float) -> None:
        self.requests += 1
        self.errors += status >= 500
        self.buckets[bisect.bisect_left(LATENCY_BOUNDS_MS, latency_s * 1000)] += 1

    def failed(self) -> None:
        self.requests += 1
        self.errors += 1

    def compared_labels(self, ours: list[str], theirs: list[str]) -> None:
        self.compared += len(ours)
        self.differed += sum(a != b for a, b in zip(ours, theirs, strict=True))


@dataclass(frozen=True)
class VersionFigures:
    """One revision's figures over a window (a canary step)."""

    requests: int = 0
    errors: int = 0
    p95_ms: float | None = None  # None: nothing answered in the window
    compared: int = 0
    differed: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def disagreement(self) -> float:
        return self.differed / self.compared if self.compared else 0.0


def p95_ms(buckets: list[int]) -> float | None:
    """The upper bound of the bucket holding the 95th percentile; None for an empty histogram."""
    total = sum(buckets)
    if not total:
        return None
    rank, seen = 0.95 * total, 0
    for i, n in enumerate(buckets):
        seen += n
        if seen >= rank:
            return LATENCY_BOUNDS_MS[min(i, len(LATENCY_BOUNDS_MS) - 1)]
    return LATENCY_BOUNDS_MS[-1]


def window(before: VersionCounts | None, now: VersionCounts | None) -> VersionFigures:
    """The figures between two totals of the same front (`before` None: since it started)."""
    if now is None:
        return VersionFigures()
    before = before or VersionCounts()
    buckets = [max(0, a - b) for a, b in zip(now.buckets, before.buckets, strict=True)]
    return VersionFigures(now.requests - before.requests, now.errors - before.errors, p95_ms(buckets),
                          now.compared - before.compared, now.differed - before.differed)
