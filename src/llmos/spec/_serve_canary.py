"""The `canary:` section of a `kind: serve` spec: how a deployment moves to a new version.

With it, deploying a new version to a running deployment does not roll every replica at once:
the new version gets a share of the traffic behind the same front, step by step, and is
promoted or rolled back on what the front measures for it (see `llmos.deploy._canary`).
"""

from __future__ import annotations

import itertools
from typing import Annotated

from pydantic import Field, field_validator

from llmos.spec._models import _Strict

__all__ = ["CanarySpec"]


class CanarySpec(_Strict):
    steps: Annotated[list[float], Field(min_length=1, default_factory=lambda: [10.0, 50.0, 100.0], description=(
        "percent of the traffic the new version gets at each step, rising, ending at 100 "
        "(at 100 it takes everything; once that step holds, the old version drains)"))]
    interval_s: Annotated[float, Field(ge=0, description=(
        "least time each step is watched before the next one"))] = 30.0
    min_requests: Annotated[int, Field(ge=1, description=(
        "requests (and, for classifiers, compared answers) a step needs before it is judged"))] = 20
    max_error_rate: Annotated[float, Field(ge=0, le=1, description=(
        "roll back when more than this share of the new version's requests fail (5xx or no answer)"))] = 0.01
    max_p95_ms: Annotated[float | None, Field(gt=0, description=(
        "roll back when the new version's p95 latency is above this; null: no absolute bound"))] = None
    max_latency_ratio: Annotated[float | None, Field(gt=0, description=(
        "roll back when the new version's p95 latency is above this many times the current version's; "
        "null: no relative bound"))] = None
    max_disagreement: Annotated[float | None, Field(ge=0, le=1, description=(
        "classifiers: roll back when more than this share of mirrored answers get a different label "
        "from the current version; null: answers are not compared"))] = None
    mirror_fraction: Annotated[float, Field(ge=0, le=1, description=(
        "share of the new version's classify requests also sent to the current version to compare "
        "labels (off the client's path: it never waits for the copy)"))] = 0.25

    @field_validator("steps")
    @classmethod
    def _rising_to_100(cls, steps: list[float]) -> list[float]:
        if any(not 0 < s <= 100 for s in steps):
            raise ValueError(f"each step is a percent within (0, 100], got {steps}")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"steps must rise, got {steps}")
        if steps[-1] != 100:
            raise ValueError(f"the last step must be 100 (the new version takes all traffic), got {steps}")
        return steps
