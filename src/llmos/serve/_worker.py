"""The batch worker: a thread that owns the model, forms batches with `form_batch` and runs one
forward pass at a time, while the event loop keeps accepting requests.

Requests hand in token ids and get one asyncio future per input; results come back to the loop
with `call_soon_threadsafe`. The queue is bounded: `submit` refuses what would exceed it. Nothing
that goes wrong in a batch stops the thread: a failed batch is run again input by input, so only
the inputs that fail on their own fail, each with an HttpError the route turns into an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from llmos._memory import release_free_heap
from llmos.serve._batching import BatchPolicy, Waiting, form_batch, retry_after_s
from llmos.serve._errors import HttpError, queue_full
from llmos.serve._runtime import Runtime, pad_batch

__all__ = ["BatchWorker", "Throughput", "follow_free_cores", "settle", "shutting_down"]

_log = logging.getLogger(__name__)
# How long stop() waits for the forward pass in progress; the queue behind it is refused, not run.
_STOP_JOIN_S = 10.0
_TRIM_EVERY_S = 5.0  # malloc_trim walks the heap (~1 ms here): now and then, between batches
PAD_MULTIPLE = 8  # a batch's padded width rounds up to this many tokens (see pad_batch)


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


def follow_free_cores(runtime: Runtime) -> None:
    """Between passes: the model's threads follow the cores other processes leave free (at most
    two /proc reads a second; runtimes without a watch, and counts the user fixed, never change)."""
    watch = runtime.watch
    if watch is not None and (threads := watch.adjust()) is not None:
        _log.info("model threads now %d of %d: other processes keep part of the cores busy", threads, watch.base)


def shutting_down() -> HttpError:
    return HttpError(503, "the server stopped before this input ran; send it again (to another replica).",
                     code="shutting_down", headers={"retry-after": "1"})


def settle(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], value: Any) -> None:
    """Resolve `future` on its loop from the worker thread; a loop already closed has no one waiting."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, future, value)


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if future.done():  # cancelled by a deadline or a disconnect meanwhile
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)


@dataclass(slots=True)
class _Item:
    ids: list[int]
    types: list[int] | None
    arrived_s: float
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class BatchWorker:
    unit = "inputs"  # what the queue counts, in 429 messages

    def __init__(self, runtime: Runtime, policy: BatchPolicy, max_queue: int, metrics: Any,
                 max_width: int | None = None) -> None:
        """`max_width`: the most tokens the model takes per input (the padded width never exceeds it)."""
        self.runtime = runtime
        self.max_width = max_width
        self._trimmed_s = 0.0
        self.policy = policy
        self.max_queue = max_queue
        self.metrics = metrics
        self.throughput = Throughput()
        self._pad_id = runtime.tokenizer.pad_token_id or 0
        self._cond = threading.Condition()
        self._queue: list[_Item] = []
        self._running = 0
        self._pass_end_s: float | None = None  # when the last forward pass ended (for lingering)
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="llmos-batch-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish the forward pass in progress; refuse (503) what still waits, so no request hangs."""
        with self._cond:
            self._stop = True
            left, self._queue = self._queue, []
            self._cond.notify()
        for item in left:
            settle(item.loop, item.future, shutting_down())
        if self._thread.is_alive():
            self._thread.join(timeout=_STOP_JOIN_S)

    def queued(self) -> int:
        return len(self._queue)

    def outstanding(self) -> int:
        return len(self._queue) + self._running

    def retry_after_s(self) -> int:
        return retry_after_s(self.outstanding(), self.throughput.items_per_s)

    def submit(self, rows: list[tuple[list[int], list[int] | None]]) -> list[asyncio.Future[Any]]:
        """Queue the inputs of one request (all or none); call from the event loop."""
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._stop:
                raise shutting_down()
            if self.outstanding() + len(rows) > self.max_queue:
                raise queue_full(self.max_queue, self.unit, self.retry_after_s())
            now = time.perf_counter()
            items = [_Item(ids, types, now, loop.create_future(), loop) for ids, types in rows]
            self._queue.extend(items)
            self._cond.notify()
        return [item.future for item in items]

    def _loop(self) -> None:
        while True:
            try:
                batch = self._next_batch()
            except Exception:  # a bug in batch formation must not leave every later request hanging
                _log.exception("forming a batch failed; refusing what was queued")
                with self._cond:
                    batch, self._queue = self._queue, []
                for item in batch:
                    settle(item.loop, item.future, HttpError(500, "the server failed to schedule this input; "
                                                                  "see its log.", code="server_error"))
                continue
            if batch is None:
                return
            follow_free_cores(self.runtime)
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._running = 0
                    self._pass_end_s = time.perf_counter()
            now = time.perf_counter()
            if now - self._trimmed_s >= _TRIM_EVERY_S:  # keep resident memory flat under shifting shapes
                release_free_heap()
                self._trimmed_s = now

    def _next_batch(self) -> list[_Item] | None:
        with self._cond:
            while True:
                # Inputs whose request gave up (deadline, client gone) are not worth a forward pass.
                self._queue = [item for item in self._queue if not item.future.done()]
                if self._stop:
                    return None
                now = time.perf_counter()
                decision = form_batch([Waiting(i.arrived_s, len(i.ids)) for i in self._queue], now, self.policy,
                                      self._pass_end_s)
                if decision.take:
                    taken = set(decision.take)
                    batch = [self._queue[i] for i in decision.take]
                    self._queue = [item for i, item in enumerate(self._queue) if i not in taken]
                    self._running = len(batch)
                    return batch
                self._cond.wait(timeout=decision.wait_s)

    def _run(self, batch: list[_Item]) -> None:
        values = self._infer(batch)
        self.metrics.batch_size.observe(len(batch))
        self.metrics.tokens.labels(kind="prompt").inc(sum(len(item.ids) for item in batch))
        with self._cond:
            self.throughput.add(len(batch), time.perf_counter())
        for item, value in zip(batch, values, strict=True):
            settle(item.loop, item.future, value)

    def _infer(self, batch: list[_Item]) -> list[Any]:
        """One output (or HttpError) per item. A failed batch of several runs again input by input,
        so one input the model cannot take fails alone instead of failing its neighbours."""
        try:
            return list(self._forward(batch))
        except Exception as exc:
            if len(batch) == 1:
                _log.exception("forward pass failed on one input")
                # Warm-up proved the model runs; what fails alone is this input's doing.
                return [HttpError(400, f"the model could not process this input ({type(exc).__name__}: {exc}).",
                                  param="input", code="input_failed")]
            _log.warning("forward pass of %d inputs failed (%s); running them one by one", len(batch), exc)
            return [value for item in batch for value in self._infer([item])]

    def _forward(self, batch: list[_Item]) -> Any:
        types = None
        if any(item.types is not None for item in batch):
            types = [item.types or [0] * len(item.ids) for item in batch]
        return self.runtime.infer(pad_batch([item.ids for item in batch], self._pad_id, types,
                                            multiple=PAD_MULTIPLE, max_width=self.max_width))
