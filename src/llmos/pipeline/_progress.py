"""What a pipeline does next: a pure function of its stages' states.

    advance({"train": ("SUCCEEDED", ()), "compress": ("PENDING", ("train",))})
    -> Progress(submit=("compress",), skip=(), state="running", failed=())

A stage starts once every stage it needs has succeeded. Once one has failed nothing new starts:
the stages still running finish, those that never started are skipped, and the pipeline has
failed, naming the stage. A stage's job retries by itself (its max_retries), so FAILED here is final.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["DONE", "STAGE_STATES", "Progress", "advance", "stage_state_of_job"]

PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED = "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "SKIPPED"
STAGE_STATES = (PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED)
DONE = frozenset({SUCCEEDED, FAILED, SKIPPED})


@dataclass(frozen=True)
class Progress:
    submit: tuple[str, ...] = ()  # stages to start now, in spec order
    skip: tuple[str, ...] = ()  # stages that will never start (a stage failed)
    state: Literal["running", "succeeded", "failed"] = "running"
    failed: tuple[str, ...] = ()  # the stages that failed


def advance(stages: Mapping[str, tuple[str, Sequence[str]]]) -> Progress:
    """`stages`: name -> (state, names it needs), in spec order."""
    failed = tuple(n for n, (state, _) in stages.items() if state == FAILED)
    running = any(state == RUNNING for state, _ in stages.values())
    if failed:
        skip = tuple(n for n, (state, _) in stages.items() if state == PENDING)
        return Progress(skip=skip, state="running" if running else "failed", failed=failed)
    if all(state in (SUCCEEDED, SKIPPED) for state, _ in stages.values()):
        return Progress(state="succeeded")
    ready = tuple(n for n, (state, needs) in stages.items()
                  if state == PENDING and all(stages.get(d, (FAILED, ()))[0] == SUCCEEDED for d in needs))
    if not ready and not running:  # waits on a stage that is not there: a spec check should have said so
        stuck = tuple(n for n, (state, _) in stages.items() if state == PENDING)
        return Progress(skip=stuck, state="failed", failed=stuck)
    return Progress(submit=ready)


def stage_state_of_job(job_state: str) -> str:
    """A stage's state from its job's: running until the job is final (a retried job is still running)."""
    if job_state == "SUCCEEDED":
        return SUCCEEDED  # the caller then reads what it yielded, which may still fail the stage (a gate)
    if job_state in ("FAILED", "CANCELLED"):
        return FAILED
    return RUNNING
