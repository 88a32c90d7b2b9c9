"""The front router: one address that forwards every request to the least-loaded ready replica.

A raw ASGI app (no framework: it owns no routes, every path is forwarded), served by uvicorn in the
front process (`_front.py`). Responses stream through chunk by chunk, so server-sent events reach
the client as the replica writes them. Two loops share the event loop: the probe loop polls each
replica's `/readyz` and keeps the table's readiness current; the sync loop re-reads the replica
set the controller publishes (routes.json) when it changes and writes what the front measured
(front-report.json) for the controller, every 0.2 s. Without a controller the last set stays.

During a canary the table splits the traffic between two revisions and totals what each answered;
a sample of the classify requests the new version takes is also sent to the current version, in
parallel and off the client's path (the client gets the new version's answer as soon as it
comes; the copy's answer is compared with it afterwards), and the labels that differ are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from llmos.deploy._front_metrics import NO_REPLICA, FrontMetrics
from llmos.deploy._pick import Failure, retry_allowed
from llmos.deploy._route_table import Picked, RouteTable
from llmos.deploy._routes import REPORT_FILE, ROUTES_FILE, decode_routes, encode_report, write_atomic
from llmos.deploy._split import labels_of

__all__ = ["FrontRouter"]

PROBE_INTERVAL_S = 0.2
SYNC_INTERVAL_S = 0.2  # how stale the replica set and the report may get
PROBE_TIMEOUT_S = 2.0
# The front's own Prometheus metrics (per-replica requests, latency, errors). Each replica keeps
# its own /metrics on its own port; through the front, GET /metrics is the front's.
METRICS_PATH = "/metrics"
# Requests are read whole before forwarding (a retry must be able to resend them). Model servers
# refuse far smaller bodies themselves; this only stops the router holding an unbounded upload.
MAX_BODY_BYTES = 32 * 2**20
# Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message: never forwarded.
_HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
        b"transfer-encoding", b"upgrade", b"host"}
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)
# The requests a canary's answers are compared on (labels), and the most of an answer kept for it.
MIRRORED_PATH = "/v1/classify"
MAX_COMPARED_BYTES = 2**20

Scope = dict[str, Any]


class FrontRouter:
    def __init__(self, table: RouteTable, state_dir: Path, log: Any = print) -> None:
        self.table = table
        self.metrics = FrontMetrics(table)
        self._dir, self._log = state_dir, log
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task] = []
        self._routes_seen: tuple[int, int, int] | None = None  # routes.json's inode, mtime, size
        self._routes_text = ""
        self._problems: dict[str, str] = {}  # what -> the problem last logged, so that each is said once
        self._background: set[asyncio.Task] = set()  # mirrored copies and their comparisons

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"] == METRICS_PATH and scope["method"] == "GET":
            body, content_type = self.metrics.render()
            await _respond(send, 200, body, content_type.encode())
        elif scope["type"] == "http":
            await self._forward(scope, receive, send)

    # --- lifespan: the shared client, the probe and sync loops -----------------------------------------
    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # No read timeout: a generation may stream for minutes; connect fails fast instead.
                limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
                self._client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=2.0), limits=limits)
                self._tasks = [asyncio.create_task(self._probe_loop()), asyncio.create_task(self._sync_loop())]
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                if self._client:
                    await self._client.aclose()
                self._log("stopped")
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _probe_loop(self) -> None:
        assert self._client is not None
        while True:
            targets = self.table.probe_targets()
            results = await asyncio.gather(*(self._probe(host, port) for _, host, port in targets))
            for (replica_id, _, _), ok in zip(targets, results, strict=True):
                self.table.report_probe(replica_id, ok)
            await asyncio.sleep(PROBE_INTERVAL_S)

    async def _sync_loop(self) -> None:
        while True:
            self.sync()
            await asyncio.sleep(SYNC_INTERVAL_S)

    def sync(self) -> None:
        """Apply routes.json if it changed since the last look, then write the report (small files:
        read and written in place, on the event loop)."""
        self._reload_routes()
        try:
            write_atomic(self._dir / REPORT_FILE, encode_report(self.table.report(os.getpid())), durable=False)
            self._say_once("report", "")
        except OSError as exc:  # routing goes on: the report is for the controller only
            self._say_once("report", f"cannot write the report for the controller: {exc}")

    def _reload_routes(self) -> None:
        path = self._dir / ROUTES_FILE
        try:
            stat = path.stat()
            seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # a rename always brings a new inode
            if seen == self._routes_seen:
                return
            self._routes_seen, text = seen, path.read_text()
            routes = decode_routes(text) if text != self._routes_text else None
        except (OSError, ValueError) as exc:  # keep the last set: routing goes on without a controller
            self._say_once("routes", f"keeping the last {len(self.table.probe_targets())} route(s): "
                                     f"cannot read {path}: {exc}")
            return
        self._say_once("routes", "")
        if routes is not None:
            self.table.apply(routes)
            self._routes_text = text
            self._log("routes: " + (", ".join(_describe(r) for r in routes.routes) or "none"))

    def _say_once(self, what: str, problem: str) -> None:
        """Log a problem when it begins or changes (a missing file would be five lines a second);
        an empty `problem` says that `what` works again."""
        if problem != self._problems.get(what, ""):
            self._problems[what] = problem
            self._log(problem or f"{what}: fine again")

    async def _probe(self, host: str, port: int) -> bool:
        assert self._client is not None
        try:
            response = await self._client.get(f"http://{host}:{port}/readyz", timeout=PROBE_TIMEOUT_S)
            return response.status_code == 200
        except httpx.HTTPError:
            return False

    # --- forwarding -------------------------------------------------------------------------------
    async def _forward(self, scope: Scope, receive: Any, send: Any) -> None:
        try:
            body = await _read_body(receive)
        except _ClientGone:
            return
        if body is None:
            await _error(send, 413, f"request body above {MAX_BODY_BYTES} bytes", "request_too_large")
            return
        tried: set[str] = set()
        attempt = no_response_retries = 0
        mirrorable = scope["method"] == "POST" and scope["path"] == MIRRORED_PATH
        while True:
            picked = self.table.acquire_routed(frozenset(tried), mirrorable and attempt == 0)
            if picked is None:
                self.metrics.failed(NO_REPLICA, "unavailable")
                what = "no other replica" if tried else "no replica"
                await _error(send, 503, f"{what} of deployment '{self.table.name}' is ready; retry shortly",
                             "unavailable", retry_after_s=1)
                return
            replica_id = picked.replica_id
            attempt += 1
            tried.add(replica_id)
            failure = await self._exchange(scope, receive, send, picked, body)
            if failure is None:
                return
            self.metrics.failed(replica_id, failure)
            self.table.failed(picked.revision)
            if not retry_allowed(failure, attempt, no_response_retries):
                self.metrics.failed(replica_id, "bad_gateway")
                await _error(send, 502, f"replica {replica_id} of deployment '{self.table.name}' failed before "
                                        "answering", "bad_gateway")
                return
            no_response_retries += failure == "no_response"

    async def _exchange(self, scope: Scope, receive: Any, send: Any, picked: Picked, body: bytes) -> Failure | None:
        """Send the request to one replica and relay its answer; the failure if it never answered.
        The request counted against the replica by `acquire` is released here, whatever happens."""
        assert self._client is not None
        replica_id, address = picked.replica_id, f"{picked.host}:{picked.port}"
        mirror = self._spawn(self._mirror(scope, body)) if picked.mirror else None
        started = time.perf_counter()
        try:
            upstream = await self._client.send(_upstream_request(self._client, scope, address, body), stream=True)
        except _CONNECT_ERRORS:
            self.table.report_connect_failure(replica_id)
            self.table.release(replica_id, None)
            return "connect"
        except httpx.TransportError:  # the connection broke before any response byte
            self.table.release(replica_id, None)
            return "no_response"
        except BaseException:
            self.table.release(replica_id, None)
            raise
        # Latency to the response headers: what a request waited for its replica. The whole
        # duration of a stream measures how much the client asked for, not how busy the replica is.
        waited_s = time.perf_counter() - started
        self.metrics.answered(replica_id, upstream.status_code, waited_s)
        self.table.answered(picked.revision, upstream.status_code, waited_s)
        kept: list[bytes] | None = [] if mirror is not None and upstream.status_code == 200 else None
        try:
            await _relay(upstream, replica_id, receive, send, kept)
        finally:
            await upstream.aclose()
            self.table.release(replica_id, waited_s)
        if mirror is not None and kept is not None:
            self._spawn(self._compare(picked.revision, b"".join(kept), mirror))
        return None

    # --- a canary's mirrored copies -------------------------------------------------------------------
    def _spawn(self, work: Any) -> asyncio.Task:
        task = asyncio.create_task(work)
        self._background.add(task)  # a reference, so the task is not collected mid-way
        task.add_done_callback(self._background.discard)
        return task

    async def _mirror(self, scope: Scope, body: bytes) -> bytes | None:
        """Send a copy of the request to a replica of the current version; its answer, if it gave one."""
        assert self._client is not None
        picked = self.table.acquire_mirror()
        if picked is None:
            return None
        replica_id, host, port = picked
        try:
            response = await self._client.send(_upstream_request(self._client, scope, f"{host}:{port}", body))
            return response.content if response.status_code == 200 else None
        except httpx.HTTPError:
            return None
        finally:
            self.table.release(replica_id, None)  # a copy: not a client's wait

    async def _compare(self, revision: str, ours: bytes, mirror: asyncio.Task) -> None:
        theirs = await mirror
        mine, other = labels_of(ours), labels_of(theirs) if theirs is not None else None
        if mine is not None and other is not None and len(mine) == len(other):
            self.table.compared(revision, mine, other)


def _describe(route: Any) -> str:
    state = "draining" if route.draining else "ready" if route.ready else "not ready yet"
    return f"{route.replica_id} ({route.host}:{route.port}, {route.revision}, {state})"


def _upstream_request(client: httpx.AsyncClient, scope: Scope, address: str, body: bytes) -> httpx.Request:
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    url = f"http://{address}{path.decode('latin-1')}" + (f"?{query.decode('latin-1')}" if query else "")
    headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP]
    client_addr = scope.get("client")
    if client_addr:
        headers.append((b"x-forwarded-for", client_addr[0].encode()))
    return client.build_request(scope["method"], url, headers=headers, content=body)


async def _relay(upstream: httpx.Response, replica_id: str, receive: Any, send: Any,
                 kept: list[bytes] | None = None) -> None:
    """Stream the answer to the client; `kept` (a list) also collects it, up to MAX_COMPARED_BYTES."""
    headers = [(k, v) for k, v in upstream.headers.raw if k.lower() not in _HOP]
    headers.append((b"x-llmos-replica", replica_id.encode()))
    await send({"type": "http.response.start", "status": upstream.status_code, "headers": headers})
    gone = asyncio.Event()
    watcher = asyncio.create_task(_watch_disconnect(receive, gone))
    try:
        # aiter_raw: bytes as they arrive, undecoded, so content-length and content-encoding still hold.
        async for chunk in upstream.aiter_raw():
            if gone.is_set():
                return  # the client left: closing the upstream stream tells the replica too
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if kept is not None:
                kept.append(chunk)
                if sum(map(len, kept)) > MAX_COMPARED_BYTES:
                    kept.clear()
                    kept = None
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except httpx.HTTPError:
        # The replica died mid-response: the status line is out, so the only honest signal left is
        # a truncated body, which the client's HTTP library reports as an incomplete read.
        return
    finally:
        watcher.cancel()


async def _watch_disconnect(receive: Any, gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


class _ClientGone(Exception):
    """The client disconnected before its request was complete: there is nothing to forward."""


async def _read_body(receive: Any) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _error(send: Any, status: int, message: str, kind: str, retry_after_s: int | None = None) -> None:
    # The OpenAI error shape, as the replicas answer their own errors.
    body = json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
    extra = [] if retry_after_s is None else [(b"retry-after", str(retry_after_s).encode())]
    await _respond(send, status, body, b"application/json", extra)


async def _respond(send: Any, status: int, body: bytes, content_type: bytes,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
