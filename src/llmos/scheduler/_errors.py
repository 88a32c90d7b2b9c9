"""Errors a caller of the scheduler can cause: a malformed snapshot or an unknown policy."""

from __future__ import annotations

from llmos.errors import LlmosError

__all__ = ["SchedulerError"]


class SchedulerError(LlmosError):
    """A job, node, owner or policy given to the scheduler is invalid."""
