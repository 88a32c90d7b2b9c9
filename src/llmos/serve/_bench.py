"""The load generator behind `llmos bench serve`: closed loop (N clients, each sends its next
request when the last one answered) or open loop (a fixed arrival rate), real texts, and a summary
of throughput, latency percentiles and errors by status. Generation can stream (`stream=True`):
then time to first token, inter-token latency and aggregate tokens/s are measured too, and a
`system_prompt` shared by every chat request shows what prefix reuse saves."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llmos.serve._http import Connection, parse_url
from llmos.serve._stream_stats import StreamStats, StreamWatch, stream_summary

__all__ = ["LoadReport", "percentile", "run_load", "summarize"]

_MAX_OPEN_LOOP_CONNECTIONS = 512


@dataclass
class LoadReport:
    url: str
    route: str
    mode: str  # "closed, concurrency 16" or "open, 120 req/s"
    duration_s: float
    requests: int
    ok: int
    throughput_rps: float  # successful requests per second
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    errors: dict[str, int] = field(default_factory=dict)  # status (or "connect") -> count
    # streamed generation only (None otherwise)
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    itl_p50_ms: float | None = None
    itl_p95_ms: float | None = None
    completion_tokens: int | None = None
    tokens_per_s: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples: Sequence[tuple[int | str, float]], duration_s: float, *, url: str = "", route: str = "",
              mode: str = "") -> LoadReport:
    """Report from (status, latency_s) samples; latencies count successful (2xx) requests only."""
    ok = sorted(lat * 1000 for status, lat in samples if isinstance(status, int) and 200 <= status < 300)
    errors = Counter(str(status) for status, _ in samples if not (isinstance(status, int) and 200 <= status < 300))

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return LoadReport(url=url, route=route, mode=mode, duration_s=round(duration_s, 3), requests=len(samples),
                      ok=len(ok), throughput_rps=round(len(ok) / duration_s, 2) if duration_s > 0 else 0.0,
                      p50_ms=r(percentile(ok, 50)), p95_ms=r(percentile(ok, 95)), p99_ms=r(percentile(ok, 99)),
                      mean_ms=r(sum(ok) / len(ok)) if ok else None, errors=dict(sorted(errors.items())))


async def _discover(conn: Connection, base: str) -> tuple[str, str, str]:
    """(route, task, model id) from GET /v1/models of an llmos server."""
    status, _, body = await conn.request("GET", f"{base}/v1/models")
    if status != 200:
        raise ValueError(f"GET {base}/v1/models answered {status}: {body[:200]!r}; pass --route")
    card = json.loads(body)["data"][0]
    route = {"classification": "/v1/classify", "embedding": "/v1/embeddings",
             "causal-lm": "/v1/completions"}[card.get("task", "classification")]
    return route, card.get("task", ""), card["id"]


def _body(route: str, text: str, model: str | None, max_tokens: int, stream: bool = False,
          system_prompt: str | None = None) -> bytes:
    if route.endswith("/completions") and "chat" in route:
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        payload: dict[str, Any] = {"messages": [*system, {"role": "user", "content": text}], "max_tokens": max_tokens}
    elif route.endswith("/completions"):
        payload = {"prompt": f"{system_prompt}\n{text}" if system_prompt else text, "max_tokens": max_tokens}
    else:
        payload = {"input": text}
    if stream:  # greedy, so that runs (and baselines) generate the same tokens
        payload.update(stream=True, stream_options={"include_usage": True}, temperature=0)
    if model is not None:
        payload["model"] = model
    return json.dumps(payload).encode()


async def _tick(progress: Callable[[float, int], None], counted_from: float, stop_at: float,
                samples: Sequence[object], every_s: float = 0.25) -> None:
    while True:
        now = time.perf_counter()
        progress(max(0.0, min(now, stop_at) - counted_from), len(samples))
        await asyncio.sleep(every_s)


async def run_load(url: str, texts: Sequence[str], *, duration_s: float, concurrency: int = 16,
                   rate_rps: float | None = None, route: str | None = None, api_key: str | None = None,
                   max_tokens: int = 16, warmup_s: float = 0.0,
                   progress: Callable[[float, int], None] | None = None, stream: bool = False,
                   system_prompt: str | None = None) -> LoadReport:
    """Drive `url` for `duration_s` (after `warmup_s` whose requests are not counted).

    `stream`: generation routes answer as server-sent events, and the report adds time to first
    token, inter-token latency and tokens/s; `system_prompt` opens every chat request (or prompt).

    `progress`, if given, is called a few times a second with the seconds measured so far (0
    during the warm-up) and the answers counted so far."""
    if not texts:
        raise ValueError("no texts to send")
    host, port, base = parse_url(url)
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    probe = Connection(host, port, headers)
    model = None
    if route is None:
        route, _, model = await _discover(probe, base)
        if system_prompt and route == "/v1/completions":
            route = "/v1/chat/completions"  # a system prompt is a chat's
    await probe.close()
    if stream and not route.endswith("/completions"):
        raise ValueError(f"streaming needs a generation route (completions or chat/completions), got {route}")
    path = f"{base}{route}"
    bodies = [_body(route, t, model, max_tokens, stream, system_prompt) for t in texts]
    next_body = itertools.cycle(bodies).__next__
    samples: list[tuple[int | str, float]] = []
    streams: list[StreamStats] = []
    start = time.perf_counter()
    counted_from = start + warmup_s
    stop_at = counted_from + duration_s

    async def one(conn: Connection) -> None:
        watch = StreamWatch()
        sent = watch.sent
        try:
            if stream:
                status: int | str = await conn.stream("POST", path, next_body(), watch.feed)
            else:
                status = (await conn.request("POST", path, next_body()))[0]
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = "connect"
            await conn.close()
        if sent >= counted_from:
            samples.append((status, time.perf_counter() - sent))
            if stream and status == 200:
                streams.append(watch.stats())

    ticker = asyncio.create_task(_tick(progress, counted_from, stop_at, samples)) if progress else None
    if rate_rps is None:
        async def client() -> None:
            conn = Connection(host, port, headers)
            try:
                while time.perf_counter() < stop_at:
                    await one(conn)
            finally:
                await conn.close()

        await asyncio.gather(*(client() for _ in range(concurrency)))
        mode = f"closed, concurrency {concurrency}"
    else:
        idle: list[Connection] = []
        tasks: set[asyncio.Task[None]] = set()

        async def arrival() -> None:
            conn = idle.pop() if idle else Connection(host, port, headers)
            try:
                await one(conn)
            finally:
                idle.append(conn)

        interval_s, n = 1.0 / rate_rps, 0
        while (now := time.perf_counter()) < stop_at:
            due = start + n * interval_s
            if due > now:
                await asyncio.sleep(due - now)
                continue
            n += 1
            if len(tasks) < _MAX_OPEN_LOOP_CONNECTIONS:
                task = asyncio.create_task(arrival())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif start + n * interval_s >= counted_from:
                samples.append(("client-saturated", 0.0))
        await asyncio.gather(*tasks)
        for conn in idle:
            await conn.close()
        mode = f"open, {rate_rps:g} req/s"
    if ticker is not None:
        ticker.cancel()
        progress(duration_s, len(samples))
    elapsed = max(min(time.perf_counter(), stop_at) - counted_from, 1e-9)
    report = summarize(samples, elapsed, url=url, route=route, mode=mode)
    if stream:
        # Tokens of answers that finished after the window still count: the window ends when the last
        # client is answered (a closed loop stops sending at stop_at, and waits for what is in flight).
        whole_s = max(time.perf_counter() - counted_from, 1e-9)
        for key, value in stream_summary(streams, whole_s).items():
            setattr(report, key, value)
    return report
