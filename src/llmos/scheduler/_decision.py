"""What a scheduling round returns: starts with exact placements, claims, preemptions and rejections."""

from __future__ import annotations

from dataclasses import dataclass

from llmos.scheduler._types import Slot

__all__ = ["Claim", "Decision", "Preempt", "Reject", "Reservation", "Start"]


@dataclass(frozen=True, slots=True)
class Start:
    """Start `job_id` now; `placement` has one slot per worker, in rank order."""

    job_id: str
    placement: tuple[Slot, ...]


@dataclass(frozen=True, slots=True)
class Claim:
    """`job_id` is to start on `placement` once the capacity being freed there is released.

    The capacity is being freed by jobs checkpointing (preempted this round or before). A claim
    binds nothing: the next round decides again. It tells a caller where the capacity it sees
    being freed is going (the simulator counts it as the claimant's share, see `llmos.sim`).
    """

    job_id: str
    placement: tuple[Slot, ...]


@dataclass(frozen=True, slots=True)
class Preempt:
    """Ask `job_id` to checkpoint and stop; it goes back to the queue keeping its place."""

    job_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Reject:
    """`job_id` can never run on this cluster (for example more GPUs than any placement offers)."""

    job_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Reservation:
    """The blocked job that backfill must not delay, and when it is expected to start.

    `start_s` is infinite when some resource it waits for has no runtime estimate.
    """

    job_id: str
    start_s: float


@dataclass(frozen=True, slots=True)
class Decision:
    starts: tuple[Start, ...] = ()
    preempts: tuple[Preempt, ...] = ()
    rejects: tuple[Reject, ...] = ()
    reservation: Reservation | None = None
    claims: tuple[Claim, ...] = ()
