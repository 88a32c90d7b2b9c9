"""The one tree of user-facing errors.

Every error a user can cause derives from `LlmosError` and carries a `hint`: the next thing to
do. The CLI prints `message` and `hint` without a traceback unless `LLMOS_DEBUG=1`.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "DataError",
    "DependencyError",
    "LlmosError",
    "ModelError",
    "RegistryError",
    "RunFailed",
    "SpecError",
    "TrackingError",
]


class LlmosError(Exception):
    """Base of every error caused by input, environment or state rather than a bug."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class SpecError(LlmosError):
    """A job spec (YAML, JSON or overrides) does not validate.

    `problems` holds one `(dotted.path, message)` pair per problem, all reported at once.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None,
                 hint: str | None = None) -> None:
        self.problems = problems or []
        if self.problems:
            lines = "\n".join(f"  {path}: {msg}" for path, msg in self.problems)
            message = f"{message}\n{lines}"
        super().__init__(message, hint)


class DataError(LlmosError):
    """A dataset file, column, label or split is missing or malformed."""


class ModelError(LlmosError):
    """A model name, path or preset cannot be resolved or loaded."""


class CheckpointError(LlmosError):
    """A checkpoint is torn, corrupt or does not match the run."""


class TrackingError(LlmosError):
    """The tracking store cannot be reached or written."""


class RegistryError(LlmosError):
    """A registry reference is unknown, or a stored model fails its integrity check."""


class DependencyError(LlmosError):
    """An optional dependency is missing; the hint names the pip command."""


class RunFailed(LlmosError):
    """A training or compression run ended with a failure; its output says why."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code
