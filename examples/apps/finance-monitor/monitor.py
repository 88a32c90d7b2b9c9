"""finance-monitor: label a stream of headlines with a served model and alert on each company's sentiment.

    python monitor.py --stream stream.jsonl --state state/ --model finance-sentiment@production \\
        --webhook http://127.0.0.1:9000/alerts

Headlines arrive as lines of the JSONL stream file ({"company": ..., "text": ..., "id": optional})
and over HTTP (POST /headlines on --port, which appends to the same file). Each batch is labelled
by the model (served from the registry by llmos in this process, or --model-url), the rules decide
the alerts, and the state file is committed; only then are the alerts sent to the webhook and
dropped from the outbox. Killed at any moment, the monitor restarts where its last commit left it:
no headline is skipped or labelled twice, and an alert is sent again only if the kill fell between
the webhook's answer and the next commit (each alert carries its `id`, so a receiver can drop that
rare repeat).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import sys
import time
from pathlib import Path

import httpx
import intake
import rules
from state import Store, read_new

log = logging.getLogger("finance-monitor")
MAX_BATCH = 64  # headlines per model request
POLL_S = 0.01  # pause when the stream has nothing new


def parse(offset: int, raw: bytes) -> dict | None:
    """A stream line as {id, company, text, sent_at}, or None (logged) for a line that is not one."""
    try:
        row = json.loads(raw)
        ok = isinstance(row, dict) and isinstance(row.get("company"), str) and isinstance(row.get("text"), str)
    except ValueError:
        ok = False
    if not ok:
        log.warning("stream byte %d: skipped, not a JSON object with company and text: %.80r", offset, raw)
        return None
    # A line without an id is named by where it starts in the file: the same name after a restart.
    return {"id": str(row.get("id") or f"at-{offset}"), "company": row["company"], "text": row["text"],
            "sent_at": float(row.get("sent_at") or time.time())}


def label(client: httpx.Client, url: str, texts: list[str]) -> list[tuple[str, float]]:
    answer = client.post(f"{url}/v1/classify", json={"input": texts}, timeout=60)
    answer.raise_for_status()
    return [(row["label"], row["score"]) for row in answer.json()["data"]]


def process(store: Store, state: dict, batch: list[dict], labels: list[tuple[str, float]],
            end: int, cfg: rules.Rules) -> None:
    """Apply one labelled batch to the state and commit it (the alerts join the outbox)."""
    scored, alerts = [], []
    for item, (name, score) in zip(batch, labels, strict=True):
        company = state["companies"].get(item["company"]) or rules.new_company()
        company, fired = rules.step(company, item["company"], item | {"label": name}, cfg)
        state["companies"][item["company"]] = company
        now = time.time()
        scored.append(item | {"label": name, "score": round(score, 4), "scored_at": now,
                              "level": round(rules.level(company["scores"], cfg), 4)})
        for alert in fired:
            alert |= {"text": item["text"], "sent_at": item["sent_at"], "decided_at": now}
            log.warning("ALERT %s: %s %s=%s (headline %s: %s)", alert["id"], alert["company"], alert["rule"],
                        alert["value"], item["id"], item["text"])
        alerts += fired
    store.append(state, "scored", scored)
    store.append(state, "alerts", alerts)
    state["outbox"] += alerts
    state["offset"] = end
    state["headlines"] += len(batch)
    store.commit(state)


def deliver(store: Store, state: dict, client: httpx.Client, webhook: str | None, retry_at: dict) -> None:
    """Send the outbox's alerts in order; each one sent is dropped from it and committed at once."""
    while state["outbox"] and webhook and time.monotonic() >= retry_at.get("t", 0.0):
        alert = state["outbox"][0]
        try:
            client.post(webhook, json=alert, timeout=5).raise_for_status()
        except httpx.HTTPError as e:
            log.warning("webhook %s: %s; alert %s kept, next try in 1 s", webhook, e, alert["id"])
            retry_at["t"] = time.monotonic() + 1.0
            return
        state["outbox"].pop(0)
        store.commit(state)


def run(args: argparse.Namespace, url: str) -> int:
    store = Store(args.state)
    # One monitor per state folder: two would read the same offsets and send every alert twice.
    # The kernel drops the lock when the process dies, SIGKILL included.
    lock = (args.state / "lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"error: another monitor is running on {args.state}\n"
              f"hint: stop it first, or give this one its own --state folder", file=sys.stderr)
        return 2
    state = store.load()
    status: dict = {"offset": state["offset"], "headlines": state["headlines"], "ready": False}
    server = intake.serve(intake.Appender(args.stream), status, args.host, args.port)
    cfg, retry_at, idle_since = rules.Rules(), {}, time.monotonic()
    ready = {"intake": f"http://{args.host}:{server.server_address[1]}", "model": url, "pid": os.getpid()}
    (args.state / "ready.json").write_text(json.dumps(ready), encoding="utf-8")
    log.info("monitoring %s from byte %d (%d headlines so far); intake %s/headlines",
             args.stream, state["offset"], state["headlines"], ready["intake"])
    status["ready"] = True
    with httpx.Client() as client:
        while True:
            lines, end = read_new(args.stream, state["offset"], MAX_BATCH)
            batch = [item for item in (parse(offset, raw) for offset, raw in lines) if item]
            if lines:
                labels = label(client, url, [b["text"] for b in batch]) if batch else []
                process(store, state, batch, labels, end, cfg)
                levels = {c: round(rules.level(s["scores"], cfg), 3) for c, s in state["companies"].items()}
                status.update(offset=state["offset"], headlines=state["headlines"], outbox=len(state["outbox"]),
                              levels=levels)
                idle_since = time.monotonic()
            deliver(store, state, client, args.webhook, retry_at)
            if not lines:
                if args.exit_idle_s and time.monotonic() - idle_since > args.exit_idle_s and not state["outbox"]:
                    log.info("nothing new for %.0f s: done after %d headlines", args.exit_idle_s, state["headlines"])
                    server.shutdown()
                    return 0
                time.sleep(POLL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", type=Path, required=True, help="the JSONL file headlines are appended to")
    parser.add_argument("--state", type=Path, required=True, help="folder for state.json and the logs")
    parser.add_argument("--model", default="finance-sentiment@production", help="registry reference to serve")
    parser.add_argument("--model-url", help="an llmos serve endpoint to use instead of serving --model here")
    parser.add_argument("--webhook", help="URL each alert is POSTed to (as JSON)")
    parser.add_argument("--host", default="127.0.0.1", help="the intake's address")
    parser.add_argument("--port", type=int, default=8600, help="the intake's port (0: a free one)")
    parser.add_argument("--threads", type=int, default=1, help="model threads when serving --model here")
    parser.add_argument("--exit-idle-s", type=float, default=0.0,
                        help="stop after this long with nothing new (0: never)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    args.stream.parent.mkdir(parents=True, exist_ok=True)
    args.stream.touch()
    if args.model_url:
        return run(args, args.model_url.rstrip("/"))
    import llmos  # the model is served from the registry by llmos, in a thread of this process

    with contextlib.ExitStack() as stack:
        server = stack.enter_context(llmos.serve(args.model, server={"port": 0},
                                                 runtime={"num_threads": args.threads}))
        log.info("serving %s (version %s) at %s", args.model, server.version, server.url)
        return run(args, server.url)


if __name__ == "__main__":
    raise SystemExit(main())
