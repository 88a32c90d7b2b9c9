"""A tiny stand-in replica: a real uvicorn process that behaves like `python -m llmos.serve JOB.json`
where the deployment layer can see it (port from the job file, /readyz, SIGTERM drain), with
routes whose cost a test controls. Run as: python _deploy_standin.py JOB.json

Environment knobs: STANDIN_READY_DELAY_S (seconds before /readyz answers 200),
STANDIN_EXIT_CODE (exit at once with this code, to simulate a model that cannot load).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs

import uvicorn

JOB = json.loads(Path(sys.argv[1]).read_text())
BORN = time.monotonic()
READY_DELAY_S = float(os.environ.get("STANDIN_READY_DELAY_S", "0"))


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    query = parse_qs(scope["query_string"].decode())
    path = scope["path"]
    if path == "/readyz":
        ready = time.monotonic() - BORN >= READY_DELAY_S
        await _json(send, 200 if ready else 503, {"ready": ready})
    elif path == "/work":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await asyncio.sleep(float(query.get("ms", ["10"])[0]) / 1000)
        await _json(send, 200, {"model": JOB["model"], "pid": os.getpid(), "echo": body.decode()})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for i in range(int(query.get("n", ["5"])[0])):
            await send({"type": "http.response.body", "body": f"data: {i}\n\n".encode(), "more_body": True})
            await asyncio.sleep(float(query.get("ms", ["100"])[0]) / 1000)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
    else:
        await _json(send, 404, {"error": path})


async def _json(send, status, obj):
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    if "STANDIN_EXIT_CODE" in os.environ:
        sys.exit(int(os.environ["STANDIN_EXIT_CODE"]))
    server = JOB["server"]
    # uvicorn on SIGTERM stops accepting, lets in-flight requests finish, then exits 0: a drain.
    uvicorn.run(app, host=server["host"], port=server["port"], log_level="warning",
                timeout_graceful_shutdown=server["drain_timeout_s"])
