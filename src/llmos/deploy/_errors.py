"""The deployment's user-facing errors, in the llmos error tree."""

from __future__ import annotations

from llmos.errors import LlmosError

__all__ = ["DeployError", "NoCapacity"]


class DeployError(LlmosError):
    """A deployment cannot start, roll or be adopted as asked; the hint names the fix."""


class NoCapacity(DeployError):
    """A spawn found no free resources for a replica now. Not a failed start: the spawn recorded
    the demand (the control plane's scheduler frees room for it) and the supervisor tries again
    on its next tick. `wanting` says what the replica waits for, e.g. "1 free core(s)"."""

    def __init__(self, message: str, wanting: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.wanting = wanting
