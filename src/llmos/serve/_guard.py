"""One ASGI middleware in front of every route: auth, readiness and draining, a full queue, body
size, the in-flight count and the request metrics. Pure ASGI (no per-request objects) to keep the
overhead of a request small. The encoder routes' JSON requests it answers itself (`direct`), with
the same handlers, schemas and error answers as the FastAPI app behind it, which still answers
everything else (and any body that is not JSON, with a 400 in OpenAI's shape).

A request that cannot fit in a full queue is refused here, before its body is read, parsed and
tokenized: under a flood, the refusals must cost the event loop as little as possible, since
every cycle it spends on them is taken from the forward passes of the accepted requests."""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

from pydantic import ValidationError

from llmos.serve._errors import HttpError, error_body, queue_full, request_error, server_error_body
from llmos.serve._schemas import UNSUPPORTED

__all__ = ["HEALTH_ROUTES", "Guard"]

_log = logging.getLogger("llmos.serve._app")  # request failures log as the app's do
HEALTH_ROUTES = frozenset({"/healthz", "/readyz"})
_OPEN_WHILE_NOT_READY = HEALTH_ROUTES | {"/metrics", "/openapi.json", "/docs", "/v1/models"}


class Guard:
    def __init__(self, app: Any, service: Any, routes: set[str], work_routes: set[str],
                 direct: dict[str, tuple[Any, Any]] | None = None) -> None:
        self.app = app
        self.service = service
        self.routes = routes  # metric labels: known paths, everything else is "other"
        self.work_routes = work_routes  # the routes that queue work for the model
        self.direct = direct or {}  # POST path -> (request schema, handler(service, request) -> body)
        key = service.api_key
        self._expected = f"Bearer {key}".encode() if key else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH_ROUTES:
            await self.app(scope, receive, send)
            return
        service, path = self.service, scope["path"]
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        # A scrape is not load: /metrics stays out of the in-flight count (autoscaling, drain).
        counted = path != "/metrics"
        if counted:
            service.inflight += 1
            service.metrics.inflight.inc()
        try:
            refusal = self._refusal(scope)
            if refusal is None:
                body = await self._read_body(scope, receive)
                if isinstance(body, tuple):
                    refusal = body
                elif path in self.direct and scope["method"] == "POST" and _is_json(scope):
                    await self._answer(path, body, send_wrapper)
                else:
                    await self.app(scope, _replay(body, receive), send_wrapper)
            if refusal is not None:
                code, message, headers = refusal
                await _send_error(send_wrapper, code, message, headers)
        finally:
            if counted:
                service.inflight -= 1
                service.metrics.inflight.dec()
            route = path if path in self.routes else "other"
            service.metrics.observe_request(route, status[0], time.perf_counter() - start)

    async def _answer(self, path: str, body: bytes, send: Any) -> None:
        """Parse, run the route's handler and answer, as the app would (its error shapes included)."""
        schema, handler = self.direct[path]
        status, headers = 200, {}
        try:
            # json.loads, then validation of Python objects, as FastAPI does: the same messages.
            content = _json(await handler(self.service, schema.model_validate(json.loads(body))))
        except json.JSONDecodeError as exc:
            status, content = request_error([{"loc": ("body",), "type": "json_invalid", "msg": "JSON decode error",
                                              "ctx": {"error": exc.msg}}])
        except UnicodeDecodeError:
            status, content = 400, error_body(400, "the request body is not UTF-8 text; send JSON.", "body")
        except ValidationError as exc:
            status, content = request_error(exc.errors(), UNSUPPORTED)
        except HttpError as exc:
            status, content, headers = exc.status, exc.body(), exc.headers
        except Exception as exc:
            _log.error("request failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
            status, content = 500, server_error_body(exc)
        await _send(send, status, content, headers)

    def _refusal(self, scope: dict[str, Any]) -> tuple[int, str, dict[str, str]] | None:
        if self._expected is not None:
            given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            if not hmac.compare_digest(given, self._expected):
                return 401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'.", {
                    "www-authenticate": "Bearer"}
        service, path = self.service, scope["path"]
        if service.draining and path != "/metrics":
            return 503, "the server is shutting down; send the request to another replica.", {"retry-after": "1"}
        if not service.ready and path not in _OPEN_WHILE_NOT_READY:
            return 503, "the model is still loading; retry shortly (GET /readyz says when).", {"retry-after": "1"}
        worker = service.worker
        if path in self.work_routes and worker is not None and worker.outstanding() >= worker.max_queue:
            full = queue_full(worker.max_queue, worker.unit, worker.retry_after_s())
            return full.status, full.message, full.headers
        return None

    async def _read_body(self, scope: dict[str, Any], receive: Any) -> bytes | tuple[int, str, dict[str, str]]:
        """The whole body, or a 413 refusal as soon as it is known to exceed the limit."""
        limit = self.service.job.limits.max_body_bytes
        too_big = (413, f"the request body exceeds {limit} bytes (limits.max_body_bytes); send fewer or "
                        "shorter inputs per request.", {})
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > limit:
            return too_big
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # client gone; the app sees the disconnect on its own receive
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return too_big
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # afterwards: wait for the disconnect, as the server would say it

    return replay


async def _send_error(send: Any, status: int, message: str, headers: dict[str, str]) -> None:
    await _send(send, status, error_body(status, message), headers)


async def _send(send: Any, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _json(payload: Any) -> bytes:
    # As FastAPI's JSONResponse renders: compact, UTF-8, no NaN.
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _is_json(scope: dict[str, Any]) -> bool:
    """A JSON content type (application/json, or application/...+json), as FastAPI accepts for a body."""
    value = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    media = value.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))
