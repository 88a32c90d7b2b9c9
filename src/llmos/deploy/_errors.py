"""The deployment's user-facing error, in the llmos error tree."""

from __future__ import annotations

from llmos.errors import LlmosError

__all__ = ["DeployError"]


class DeployError(LlmosError):
    """A deployment cannot start, roll or be adopted as asked; the hint names the fix."""
