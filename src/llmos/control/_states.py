"""Job states and the transitions allowed between them (the one table every change is checked against)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ALLOWED", "HOLDING", "TERMINAL", "JobState"]


class JobState(StrEnum):
    QUEUED = "QUEUED"
    STARTING = "STARTING"  # placed, being spawned
    RUNNING = "RUNNING"
    PREEMPTED = "PREEMPTED"  # asked to checkpoint and stop; holds its resources until it has
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
# States whose processes may be alive: their placement is held in every scheduling snapshot.
HOLDING = frozenset({JobState.STARTING, JobState.RUNNING, JobState.PREEMPTED})

_Q, _S, _R, _P = JobState.QUEUED, JobState.STARTING, JobState.RUNNING, JobState.PREEMPTED
_OK, _FAIL, _CANCEL = JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED

# A failed attempt with retries left goes straight back to QUEUED (with a backoff), so FAILED is
# only ever final; a preempted job that happens to finish while checkpointing has succeeded.
ALLOWED: dict[JobState, frozenset[JobState]] = {
    _Q: frozenset({_S, _FAIL, _CANCEL}),
    _S: frozenset({_R, _Q, _P, _OK, _FAIL, _CANCEL}),
    _R: frozenset({_Q, _P, _OK, _FAIL, _CANCEL}),
    _P: frozenset({_Q, _OK, _FAIL, _CANCEL}),
    _OK: frozenset(),
    _FAIL: frozenset(),
    _CANCEL: frozenset(),
}
