"""The batch worker: a thread that owns the model, forms batches with `form_batch` and runs one
forward pass at a time, while the event loop keeps accepting requests.

Requests hand in token ids and get one asyncio future per input; results come back to the loop
with `call_soon_threadsafe`. The queue is bounded: `submit` refuses what would exceed it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from llmos.serve._batching import BatchPolicy, Waiting, form_batch, retry_after_s
from llmos.serve._runtime import Runtime, pad_batch

__all__ = ["BatchWorker", "QueueFull", "Throughput"]

_log = logging.getLogger(__name__)


class QueueFull(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"queue full; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class Throughput:
    """Items finished per second, smoothed over the last few seconds (for Retry-After)."""

    def __init__(self, half_life_s: float = 2.0) -> None:
        self.items_per_s = 0.0
        self._half_life_s = half_life_s
        self._last_s: float | None = None

    def add(self, items: int, now_s: float) -> None:
        if self._last_s is None:
            self._last_s = now_s
            return
        dt = max(now_s - self._last_s, 1e-6)
        weight = 0.5 ** (dt / self._half_life_s)
        self.items_per_s = weight * self.items_per_s + (1 - weight) * items / dt
        self._last_s = now_s


@dataclass
class _Item:
    ids: list[int]
    types: list[int] | None
    arrived_s: float
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class BatchWorker:
    def __init__(self, runtime: Runtime, policy: BatchPolicy, max_queue: int, metrics: Any) -> None:
        self.runtime = runtime
        self.policy = policy
        self.max_queue = max_queue
        self.metrics = metrics
        self.throughput = Throughput()
        self._pad_id = runtime.tokenizer.pad_token_id or 0
        self._cond = threading.Condition()
        self._queue: list[_Item] = []
        self._running = 0
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="llmos-batch-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def queued(self) -> int:
        return len(self._queue)

    def outstanding(self) -> int:
        return len(self._queue) + self._running

    def submit(self, rows: list[tuple[list[int], list[int] | None]]) -> list[asyncio.Future[Any]]:
        """Queue the inputs of one request (all or none); call from the event loop."""
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        items = [_Item(ids, types, now, loop.create_future(), loop) for ids, types in rows]
        with self._cond:
            if self.outstanding() + len(items) > self.max_queue:
                raise QueueFull(retry_after_s(self.outstanding(), self.throughput.items_per_s))
            self._queue.extend(items)
            self._cond.notify()
        return [item.future for item in items]

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)

    def _next_batch(self) -> list[_Item] | None:
        with self._cond:
            while True:
                # Inputs whose request gave up (deadline, client gone) are not worth a forward pass.
                self._queue = [item for item in self._queue if not item.future.done()]
                if self._stop and not self._queue:
                    return None
                now = time.perf_counter()
                decision = form_batch([Waiting(i.arrived_s, len(i.ids)) for i in self._queue], now, self.policy)
                if decision.take:
                    taken = set(decision.take)
                    batch = [self._queue[i] for i in decision.take]
                    self._queue = [item for i, item in enumerate(self._queue) if i not in taken]
                    self._running = len(batch)
                    return batch
                self._cond.wait(timeout=decision.wait_s)

    def _run(self, batch: list[_Item]) -> None:
        try:
            types = None
            if any(item.types is not None for item in batch):
                types = [item.types or [0] * len(item.ids) for item in batch]
            out = self.runtime.infer(pad_batch([item.ids for item in batch], self._pad_id, types))
            results: list[Any] = list(out)
            error: BaseException | None = None
        except Exception as exc:  # a failed batch fails its requests, never the worker
            _log.exception("forward pass failed")
            results, error = [], exc
        self.metrics.batch_size.observe(len(batch))
        self.metrics.tokens.labels(kind="prompt").inc(sum(len(item.ids) for item in batch))
        with self._cond:
            self._running = 0
            self.throughput.add(len(batch), time.perf_counter())
        for i, item in enumerate(batch):
            value = error if error is not None else results[i]
            item.loop.call_soon_threadsafe(_settle, item.future, value)


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if future.done():  # cancelled by a deadline or a disconnect meanwhile
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)
