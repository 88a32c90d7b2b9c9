"""The ASGI middleware in front of every control API route: the body size limit, the input no route
can handle (`_input`), and the audit row of every refused call.

The body is read here, chunk by chunk, up to `max_body_bytes` (a Content-Length above it is
refused before a byte is read), then handed to the app. Every answer of 400 or more, from here,
from a route or from the framework (401 without a token, 404 unknown route, 405, 422), leaves one
row in the audit log: the route's action and target when the service named them, its method and
path otherwise. Successful state changes are audited by the service, in their own transaction.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from llmos.control._errors import ControlError, Rejected, TooLarge, error_body
from llmos.control._input import parse_json, url_problems, value_problems

__all__ = ["Guard"]

_log = logging.getLogger("llmos.control")


class Guard:
    def __init__(self, app: Any, engine: Any, max_body_bytes: int, identify: Any = None) -> None:
        self.app = app
        self.engine = engine
        self.max_body_bytes = max_body_bytes
        self.identify = identify  # (token, source) -> Caller: who a call refused before its route was

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        status = [0]
        held: list[dict[str, Any]] = []

        async def send_wrapper(message: dict[str, Any]) -> None:
            # A refusal's row is written before its answer leaves: a client that sees the 4xx finds it
            # in the audit log (error answers are small; they are held until their body is complete).
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            if status[0] < 400:
                await send(message)
                return
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await self._audit(scope, status[0])
                status[0] = -status[0]  # audited
                for part in held:
                    await send(part)
                held.clear()

        try:
            refusal = self._url_refusal(scope)
            body = b""
            if refusal is None:
                body, refusal = await self._read_body(scope, receive)
            if refusal is None:
                refusal = _body_refusal(scope, body)
            if refusal is not None:
                state["error"] = refusal.message.split("\n", 1)[0]
                await _send_error(send_wrapper, refusal)
            else:
                await self.app(scope, _replay(body, receive), send_wrapper)
        except Exception:
            status[0] = 500  # the framework's last handler answers it
            raise
        finally:
            if status[0] >= 400:  # not audited yet: the answer never completed (or the app raised)
                await self._audit(scope, status[0])

    def _url_refusal(self, scope: dict[str, Any]) -> ControlError | None:
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        problems = url_problems(scope["path"], query)
        if problems:
            return Rejected("the URL is not valid:", problems=problems,
                            hint="Remove NUL bytes from the URL; ids, offsets and cursors fit in 64 bits.")
        return None

    async def _read_body(self, scope: dict[str, Any], receive: Any) -> tuple[bytes, ControlError | None]:
        limit = self.max_body_bytes
        too_big = TooLarge(f"the request body is larger than the control plane's limit of {limit} bytes.",
                           hint="Send a smaller request (put large data in files and give their paths), or raise "
                                "max_body_bytes in LLMOS_HOME/control.yaml and restart: llmos down && llmos up")
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > limit:
            return b"", too_big
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the app sees it on its own receive
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return b"", too_big
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks), None

    async def _audit(self, scope: dict[str, Any], status: int) -> None:
        from starlette.concurrency import run_in_threadpool

        try:
            await run_in_threadpool(self._write_refusal, scope, status)
        except Exception as exc:  # the answer is already sent; say so in the daemon's log
            _log.error("could not audit a refused call (%s %s, %s): %s", scope["method"], scope["path"], status, exc)

    def _write_refusal(self, scope: dict[str, Any], status: int) -> None:
        from llmos.control._audit import Entry, append
        from llmos.control._db import write

        state = scope.get("state", {})
        client = scope.get("client")
        source = f"{client[0]}:{client[1]}" if client else "unknown"
        caller = state.get("caller") or self._caller(scope, source)
        named = state.get("audit")  # (action, target) when the service named the refused operation
        route = scope.get("route")
        action, target = named or (f"{scope['method']} {getattr(route, 'path', scope['path'])}", scope["path"])
        entry = Entry(actor=caller.owner if caller else "anonymous", role=caller.role if caller else "none",
                      action=action, target=target, source=source, outcome=str(status), status=status,
                      project=getattr(caller, "project", "") or "", detail=state.get("error", ""))
        with write(self.engine) as conn:
            append(conn, entry)

    def _caller(self, scope: dict[str, Any], source: str) -> Any:
        """The token's owner, for a call refused here before its route checked the token."""
        from llmos.errors import LlmosError

        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode("latin-1")
        if self.identify is None or not given.startswith("Bearer "):
            return None
        try:
            return self.identify(given.removeprefix("Bearer ").strip(), source)
        except LlmosError:  # unknown or revoked: anonymous
            return None


def _body_refusal(scope: dict[str, Any], body: bytes) -> ControlError | None:
    if not body or not _is_json(scope):
        return None
    parsed, problems = parse_json(body)
    problems = problems or value_problems(parsed)
    if problems:
        return Rejected("the request body is not valid:", problems=problems,
                        hint="Fix the values named above and send the request again.")
    return None


def _is_json(scope: dict[str, Any]) -> bool:
    value = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    if not value:
        return True  # FastAPI reads a body without a content type as JSON
    media = value.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_error(send: Any, exc: ControlError) -> None:
    message = exc.message.split("\n", 1)[0] if exc.problems else exc.message
    body = json.dumps(error_body(message, exc.hint, exc.problems)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.status == 413:
        headers.append((b"connection", b"close"))  # the rest of the body is not read
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
