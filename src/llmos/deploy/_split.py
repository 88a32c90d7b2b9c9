"""The weighted traffic split of a canary, as the front applies it. Pure.

During a canary the controller publishes a `Split` with the replica set: which revision is the
current one, which is the new one, the new one's share of requests, and the share of its
classify requests that are also sent to the current version to compare labels. The front numbers
its requests and asks these functions, so the same counter always gives the same answer (tests
call them with literals) and the shares hold over any run of requests, not just on average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Split", "labels_of", "pick_revision", "should_mirror"]

# The golden ratio's fractional part: n * PHI mod 1 spreads any run of consecutive n evenly over
# [0, 1) (a low-discrepancy sequence), so 10% of 20 requests is 2, not "about 2 on average".
_PHI = (math.sqrt(5) - 1) / 2


@dataclass(frozen=True)
class Split:
    stable: str  # the revision that serves now
    canary: str  # the new revision on trial
    canary_weight: float  # its share of requests, 0..1
    mirror_fraction: float = 0.0  # share of its classify requests copied to `stable` to compare labels


def pick_revision(split: Split, counter: int) -> str:
    """The revision request number `counter` goes to: `split.canary` for a `canary_weight` share
    of any run of counters, `split.stable` for the rest."""
    if split.canary_weight >= 1.0:
        return split.canary
    if split.canary_weight <= 0.0:
        return split.stable
    return split.canary if (counter * _PHI) % 1.0 < split.canary_weight else split.stable


def should_mirror(fraction: float, counter: int) -> bool:
    """Whether canary request number `counter` (0-based, counted among canary requests) is mirrored:
    exactly floor(n * fraction) of the first n are."""
    if fraction <= 0.0:
        return False
    return math.floor((counter + 1) * fraction + 1e-9) > math.floor(counter * fraction + 1e-9)


def labels_of(body: bytes) -> list[str] | None:
    """The labels of a `/v1/classify` answer in input order; None if `body` is not one."""
    import json

    try:
        data = json.loads(body)["data"]
        return [str(row["label"]) for row in sorted(data, key=lambda row: row["index"])]
    except (ValueError, KeyError, TypeError):
        return None
