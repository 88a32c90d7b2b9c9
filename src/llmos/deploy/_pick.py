"""Where the front router sends a request, and whether a failed forward may be sent again. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["MAX_ATTEMPTS", "Candidate", "Failure", "pick_replica", "retry_allowed"]

# A request is tried on at most this many replicas: enough to get past a replica or two that just
# died, few enough that a request cannot walk the whole deployment.
MAX_ATTEMPTS = 3

# connect: the replica refused or never accepted the connection, so it cannot have seen the request.
# no_response: the connection broke before any response byte (the replica died while working on it).
Failure = Literal["connect", "no_response"]


@dataclass(frozen=True, slots=True)
class Candidate:
    replica_id: str
    routable: bool  # ready, healthy and not draining
    outstanding: int  # requests sent to it by this router and not yet finished
    dispatched: int = 0  # requests ever sent to it: the tie-break that spreads an idle load evenly


def pick_replica(candidates: Iterable[Candidate], exclude: frozenset[str] = frozenset()) -> str | None:
    """The routable replica with the fewest outstanding requests (ties: fewest dispatched, then id);
    None when no replica outside `exclude` is routable."""
    best = min((c for c in candidates if c.routable and c.replica_id not in exclude),
               key=lambda c: (c.outstanding, c.dispatched, c.replica_id), default=None)
    return best.replica_id if best else None


def retry_allowed(failure: Failure, attempt: int, no_response_retries: int) -> bool:
    """Whether attempt number `attempt` (1-based), which failed with `failure`, may be tried again.

    A connect failure is always safe to retry. A request whose replica died before answering is
    sent again once: llmos replicas only run side-effect-free inference, so a repeat is harmless,
    and a single retry bounds what a request that crashes its replica can do to the others.
    """
    if attempt >= MAX_ATTEMPTS:
        return False
    return failure == "connect" or no_response_retries < 1
