"""The HTTP intake route: POST /headlines appends to the stream file the monitor reads.

Headlines that come over HTTP go into the same JSONL file as everything else before the answer
(202) is sent, so one byte offset in the state file covers both ways in, and a headline the
intake accepted is never lost by a monitor that dies before labelling it.
GET /status answers with the monitor's latest progress.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_TEXT = 1000  # characters in a headline
MAX_BODY = 1 << 20  # bytes in one request


def validate(body: object) -> tuple[list[dict], list[str]]:
    """The headlines of a request body (one object or a list of them), or every problem with its path."""
    items = body if isinstance(body, list) else [body]
    prefix = "headlines" if isinstance(body, list) else "headline"
    rows, problems = [], []
    for i, item in enumerate(items):
        where = f"{prefix}[{i}]" if isinstance(body, list) else prefix
        if not isinstance(item, dict):
            problems.append(f"{where}: expected an object with company and text, got {type(item).__name__}")
            continue
        unknown = sorted(set(item) - {"id", "company", "text"})
        if unknown:
            problems.append(f"{where}.{unknown[0]}: unknown field (allowed: id, company, text)")
        for key in ("company", "text"):
            value = item.get(key)
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
                problems.append(f"{where}.{key}: expected a non-empty string of at most {MAX_TEXT} characters")
        if "id" in item and (not isinstance(item["id"], str) or not item["id"]):
            problems.append(f"{where}.id: expected a non-empty string (or leave it out: one is given)")
        rows.append({"id": item.get("id") or f"web-{uuid.uuid4().hex[:12]}", "company": item.get("company"),
                     "text": item.get("text")})
    return rows, problems


class Appender:
    """Appends whole lines to the stream file, one write per request, synced before returning."""

    def __init__(self, path: Path) -> None:
        self.path, self.lock = path, threading.Lock()

    def append(self, rows: list[dict]) -> None:
        now = time.time()
        data = "".join(json.dumps(row | {"sent_at": now}) + "\n" for row in rows).encode("utf-8")
        with self.lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)


def serve(appender: Appender, status: dict, host: str, port: int) -> ThreadingHTTPServer:
    """Start the intake on a thread; the server (its port in server_address[1])."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, code: int, payload: dict) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/status":
                self._answer(200, dict(status))
            else:
                self._answer(404, {"error": f"no route {self.path}", "hint": "POST /headlines or GET /status"})

        def do_POST(self) -> None:
            if self.path != "/headlines":
                self._answer(404, {"error": f"no route {self.path}", "hint": "POST /headlines"})
                return
            size = int(self.headers.get("content-length") or 0)
            if size > MAX_BODY:
                self._answer(413, {"error": f"body: {size} bytes, at most {MAX_BODY}",
                                   "hint": "send fewer headlines per request"})
                return
            try:
                body = json.loads(self.rfile.read(size) or b"null")
            except ValueError as e:
                self._answer(400, {"error": f"body: not JSON ({e})",
                                   "hint": 'send {"company": "...", "text": "..."} or a list of them'})
                return
            rows, problems = validate(body)
            if problems:
                self._answer(422, {"error": "; ".join(problems), "hint": "fix the fields named and send it again"})
                return
            appender.append(rows)
            self._answer(202, {"accepted": len(rows), "ids": [r["id"] for r in rows]})

        def log_message(self, *args: object) -> None:  # quiet: the monitor logs what matters
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
