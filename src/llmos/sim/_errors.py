"""Errors a simulator user can cause: a malformed trace, cluster, owners or run-time file."""

from __future__ import annotations

from llmos.errors import LlmosError

__all__ = ["ClusterError", "TraceError"]


class TraceError(LlmosError):
    """A trace (or run-time distribution) file is missing, lacks a column or has a bad row."""


class ClusterError(LlmosError):
    """A cluster or owners file is missing, lacks a column or has a bad row."""
