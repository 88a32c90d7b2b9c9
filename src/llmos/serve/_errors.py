"""Errors that become HTTP answers, in OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["HttpError", "error_body", "queue_full", "request_error", "server_error_body", "validation_error"]

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          413: "invalid_request_error", 429: "rate_limit_exceeded",
          503: "service_unavailable", 504: "timeout"}
# Pydantic error types that OpenAI answers with 400: the body is not JSON (or not an object), a
# parameter it does not know, text that is not Unicode.
_BAD_REQUEST = {"json_invalid": "invalid_json", "model_attributes_type": "invalid_body",
                "model_type": "invalid_body", "dict_type": "invalid_body", "extra_forbidden": "unknown_parameter",
                "invalid_unicode": "invalid_unicode"}


class HttpError(Exception):
    """Raised by request handling; the app turns it into a JSON error answer."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_body(self.status, self.message, self.param, self.code)


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> bytes:
    kind = _TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "server_error")
    err: dict[str, Any] = {"message": message, "type": kind, "param": param, "code": code}
    return json.dumps({"error": err}).encode()


def queue_full(max_queue: int, unit: str, retry_after_s: int) -> HttpError:
    """The 429 of a full queue, naming the limit; `unit` is what the queue counts (inputs, sequences)."""
    return HttpError(429, f"the server is at capacity (limits.max_queue = {max_queue} {unit} queued or running); "
                          f"retry after {retry_after_s} s.", code="queue_full",
                     headers={"retry-after": str(retry_after_s)})


def validation_error(errors: list[Any]) -> tuple[str, str | None]:
    """(message, param) of a bad value from pydantic's errors: each problem as `field.path: what`, the
    request body's own place ("body") left out of the path."""
    problems = [(".".join(str(p) for p in err["loc"] if p != "body") or "body", err["msg"]) for err in errors]
    return "; ".join(f"{where}: {msg}" for where, msg in problems), problems[0][0] if problems else None


def request_error(errors: list[Any], unsupported: frozenset[str] = frozenset()) -> tuple[int, bytes]:
    """(status, body) of a request that failed validation, as OpenAI answers it: 400 for a body that
    is not a JSON object, an unknown parameter, a parameter llmos cannot honour (`unsupported`, set
    to anything but its neutral value), text that is not Unicode, and (as OpenAI does, where FastAPI
    would say 422) a value out of range or of the wrong type, naming the field."""
    for err in errors:
        where = [p for p in err["loc"] if p != "body"]
        kind = err.get("type", "")
        name = str(where[0]) if where else None
        if kind == "json_invalid":
            return 400, error_body(400, "the request body is not valid JSON; send a JSON object "
                                        f"({err.get('ctx', {}).get('error', 'parse error')}).", None, "invalid_json")
        if kind == "invalid_unicode":
            return 400, error_body(400, err["msg"], err.get("ctx", {}).get("where"), "invalid_unicode")
        if kind in _BAD_REQUEST and not where:
            return 400, error_body(400, f"the request body must be a JSON object: {err['msg']}", None,
                                   _BAD_REQUEST[kind])
        if kind == "extra_forbidden":
            return 400, error_body(400, f"unrecognized request argument supplied: {'.'.join(map(str, where))}.",
                                   ".".join(map(str, where)), "unknown_parameter")
        if name in unsupported:
            return 400, error_body(400, f"{name} is not supported by this server (llmos cannot honour it); "
                                        "leave it out.", name, "unsupported_parameter")
    return 400, error_body(400, *validation_error(errors), "invalid_value")


def server_error_body(exc: BaseException) -> bytes:
    """The 500 of a request that failed in the server (the details go to its log, not the client)."""
    return error_body(500, f"the server failed on this request ({type(exc).__name__}); see its log.",
                      code="server_error")
