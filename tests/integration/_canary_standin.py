"""A stand-in classifier replica for canary tests: a real uvicorn process that answers
`POST /v1/classify` like `llmos serve` does (one label per input) after a delay, and /readyz.
Run as: python _canary_standin.py JOB.json. STANDIN_LABEL (default pos) is the label it gives,
STANDIN_DELAY_MS (default 5) how long it takes, STANDIN_STATUS (default 200) the status it answers
(500: a version that fails every request)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import uvicorn

JOB = json.loads(Path(sys.argv[1]).read_text())
LABEL = os.environ.get("STANDIN_LABEL", "pos")
DELAY_S = float(os.environ.get("STANDIN_DELAY_MS", "5")) / 1000
STATUS = int(os.environ.get("STANDIN_STATUS", "200"))


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/readyz":
        await _json(send, 200, {"ready": True})
        return
    if scope["path"] != "/v1/classify":
        await _json(send, 404, {"error": scope["path"]})
        return
    await asyncio.sleep(DELAY_S)
    if STATUS != 200:
        await _json(send, STATUS, {"error": {"message": "injected failure", "type": "server_error", "code": STATUS}})
        return
    inputs = json.loads(body)["input"]
    inputs = [inputs] if isinstance(inputs, str) else inputs
    data = [{"index": i, "label": LABEL, "score": 1.0, "probabilities": {LABEL: 1.0}} for i in range(len(inputs))]
    await _json(send, 200, {"object": "list", "model": JOB["model"], "data": data})


async def _json(send, status, obj):
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    server = JOB["server"]
    uvicorn.run(app, host=server["host"], port=server["port"], log_level="warning",
                timeout_graceful_shutdown=server["drain_timeout_s"])
