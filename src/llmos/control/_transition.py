"""The one function through which a job changes state.

It checks the move against `ALLOWED`, updates the job only if it is still in the state the caller
saw (compare-and-set, so two writers cannot both move it), appends the transition with its time
and reason, and, for a final state, inserts the job's completion record, whose primary key makes
a second completion impossible. All of it happens in the caller's write transaction: the change
is on disk before the caller acts on it (spawns, signals, answers).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from llmos.control._errors import Conflict, NotFound
from llmos.control._schema import completions, jobs, transitions
from llmos.control._states import ALLOWED, TERMINAL, JobState

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["create_job", "transition"]


def transition(conn: Connection, job_id: int, to: JobState, reason: str, *, now_s: float,
               expect: Iterable[JobState] | None = None, **fields: Any) -> JobState:
    """Move job `job_id` to `to`, recording why; returns the state it left.

    `expect` narrows the states the caller allows it to be in; `fields` are other job columns
    written in the same update (placement, process, attempt, ...).
    """
    row = conn.execute(select(jobs.c.state, jobs.c.attempt, jobs.c.exit_code).where(jobs.c.id == job_id)).first()
    if row is None:
        raise NotFound(f"no job {job_id}.", hint="List jobs with: llmos jobs ls")
    current = JobState(row.state)
    if to not in ALLOWED[current] or (expect is not None and current not in set(expect)):
        raise Conflict(f"job {job_id} is {current}; it cannot become {to}.",
                       hint="See its history with: llmos jobs show " + str(job_id))
    changed = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == current.value)
                           .values(state=to.value, reason=reason, updated_s=now_s, **fields)).rowcount
    if changed != 1:  # another writer moved it between our read and our update
        raise Conflict(f"job {job_id} changed state meanwhile; it is no longer {current}.",
                       hint="Look again with: llmos jobs show " + str(job_id))
    attempt = fields.get("attempt", row.attempt)
    conn.execute(insert(transitions).values(job_id=job_id, at_s=now_s, from_state=current.value, to_state=to.value,
                                            attempt=attempt, reason=reason))
    if to in TERMINAL:
        conn.execute(insert(completions).values(job_id=job_id, state=to.value, at_s=now_s,
                                                exit_code=fields.get("exit_code", row.exit_code)))
    return current


def create_job(conn: Connection, values: dict[str, Any], reason: str, *, now_s: float) -> int:
    """Insert a new job in QUEUED with its first history line; returns its id."""
    job_id = conn.execute(insert(jobs).values(state=JobState.QUEUED.value, submit_s=now_s, updated_s=now_s,
                                              reason=reason, attempt=0, failures=0, holds=False,
                                              not_before_s=0.0, **values)).inserted_primary_key[0]
    conn.execute(insert(transitions).values(job_id=job_id, at_s=now_s, from_state=None,
                                            to_state=JobState.QUEUED.value, attempt=0, reason=reason))
    return int(job_id)
