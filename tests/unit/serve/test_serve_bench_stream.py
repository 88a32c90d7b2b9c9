"""`llmos bench serve --stream`: time to first token, inter-token latency and tokens/s, read from
server-sent events (literal bytes) and measured against a real generation server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tests.unit.serve.conftest import serve_job

from llmos.serve._stream_stats import StreamWatch, stream_summary

pytestmark = pytest.mark.timeout(180)


def _event(payload: dict[str, Any] | str) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()


def test_stream_watch_times_text_events_and_reads_the_usage() -> None:
    watch = StreamWatch(sent=0.0)
    pieces = [_event({"choices": [{"delta": {"role": "assistant"}}]}),  # no text yet
              _event({"choices": [{"delta": {"content": "Hel"}}]}), _event({"choices": [{"text": "lo"}]})[:9],
              _event({"choices": [{"text": "lo"}]})[9:] + _event({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
              _event({"choices": [], "usage": {"completion_tokens": 3}}) + _event("[DONE]")]
    for piece in pieces:
        watch.feed(piece)
    stats = watch.stats()
    assert stats.tokens == 3 and stats.ttft_s is not None and stats.ttft_s > 0
    assert stats.itl_s == pytest.approx((watch.last - watch.first) / 2)  # type: ignore[operator]
    summary = stream_summary([stats, stats], duration_s=2.0)
    assert summary["tokens_per_s"] == 3.0 and summary["ttft_p50_ms"] == summary["ttft_p95_ms"]


def test_streaming_load_against_a_generation_server(tiny_refs: dict[str, str], start_server: Any) -> None:
    from llmos.serve._bench import run_load

    job = serve_job(tiny_refs["causal-lm"], batching={"max_batch_size": 4}, limits={"max_new_tokens": 16})
    with start_server(job) as running:
        report = asyncio.run(run_load(running.url, ["a film", "the story of a cat"], duration_s=1.5, concurrency=3,
                                      max_tokens=8, warmup_s=0.3, stream=True,
                                      system_prompt="you answer questions about films, briefly."))
    assert report.route == "/v1/chat/completions" and report.ok > 3 and report.errors == {}
    assert report.ttft_p50_ms and report.ttft_p95_ms and report.ttft_p95_ms >= report.ttft_p50_ms
    assert report.itl_p50_ms and report.tokens_per_s and report.completion_tokens
    assert report.completion_tokens <= 8 * report.ok
    assert running.service.worker.prefix.hits > 0  # the shared system prompt was reused
