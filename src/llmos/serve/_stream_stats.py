"""What one streamed generation measured: time to first token, inter-token latency and tokens,
read from the server-sent events as they arrive; and their percentiles over a run."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["StreamStats", "StreamWatch", "stream_summary"]


@dataclass
class StreamStats:
    ttft_s: float | None  # request sent -> first text
    itl_s: float | None  # (last text - first text) / (tokens - 1)
    tokens: int  # completion tokens (the usage chunk's count)


@dataclass
class StreamWatch:
    """Feed it the body's bytes as they arrive (`feed`), then read `stats()`."""

    sent: float = field(default_factory=time.perf_counter)
    first: float | None = None
    last: float | None = None
    tokens: int = 0
    _buffer: bytes = b""

    def feed(self, data: bytes) -> None:
        now = time.perf_counter()
        self._buffer += data
        while b"\n\n" in self._buffer:
            event, self._buffer = self._buffer.split(b"\n\n", 1)
            if not event.startswith(b"data: ") or event == b"data: [DONE]":
                continue
            chunk = json.loads(event[6:])
            usage = chunk.get("usage")
            if usage:
                self.tokens = int(usage.get("completion_tokens") or 0)
            for choice in chunk.get("choices") or []:
                if choice.get("text") or (choice.get("delta") or {}).get("content"):
                    self.first = self.first if self.first is not None else now
                    self.last = now

    def stats(self) -> StreamStats:
        ttft = None if self.first is None else self.first - self.sent
        itl = (self.last - self.first) / (self.tokens - 1) if (
            self.first is not None and self.last is not None and self.tokens > 1) else None
        return StreamStats(ttft, itl, self.tokens)


def stream_summary(streams: Sequence[StreamStats], duration_s: float) -> dict[str, float | None]:
    """ttft/itl p50 and p95 in ms, and aggregate completion tokens per second."""
    from llmos.serve._bench import percentile

    def ms(values: list[float], q: float) -> float | None:
        value = percentile(sorted(values), q)
        return None if value is None else round(value * 1000, 2)

    ttft = [s.ttft_s for s in streams if s.ttft_s is not None]
    itl = [s.itl_s for s in streams if s.itl_s is not None]
    tokens = sum(s.tokens for s in streams)
    return {"ttft_p50_ms": ms(ttft, 50), "ttft_p95_ms": ms(ttft, 95), "itl_p50_ms": ms(itl, 50),
            "itl_p95_ms": ms(itl, 95), "completion_tokens": tokens,
            "tokens_per_s": round(tokens / duration_s, 2) if duration_s > 0 else 0.0}
