"""Errors of the control plane, each with the HTTP status the REST API answers it with, and the one
shape every error answer of the REST API has: {"error", "hint", "problems": [{"path", "message"}]}."""

from __future__ import annotations

from llmos.errors import LlmosError

__all__ = ["Conflict", "ControlError", "Forbidden", "NotFound", "NotRunning", "Rejected", "TooLarge", "Unauthorized",
           "error_body"]


class ControlError(LlmosError):
    """A request the control plane refuses; `status` is its HTTP status code."""

    status = 400

    def __init__(self, message: str, hint: str | None = None, problems: list[tuple[str, str]] | None = None) -> None:
        self.problems = problems or []
        if self.problems:
            message = message + "\n" + "\n".join(f"  {path}: {msg}" for path, msg in self.problems)
        super().__init__(message, hint)


class NotFound(ControlError):
    status = 404


class Conflict(ControlError):
    """The request contradicts the current state (cancel a finished job, a busy run folder)."""

    status = 409


class Rejected(ControlError):
    """The request is well-formed but can never be satisfied (more resources than the machine has)."""

    status = 422


class TooLarge(ControlError):
    """The request body is above the control plane's `max_body_bytes`."""

    status = 413


class Unauthorized(ControlError):
    status = 401


class Forbidden(ControlError):
    status = 403


class NotRunning(ControlError):
    """No control plane answers at the address in LLMOS_HOME."""

    status = 503


def error_body(message: str, hint: str | None = None, problems: list[tuple[str, str]] | None = None) -> dict:
    """The body of every error answer; `message` is one line (the problems are listed apart)."""
    return {"error": message, "hint": hint,
            "problems": [{"path": path, "message": text} for path, text in problems or []]}
