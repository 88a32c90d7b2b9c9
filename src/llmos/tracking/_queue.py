"""Metrics off the training loop's critical path: the caller appends to a deque; a background
thread turns the points into MLflow `Metric`s and writes them with `log_batch`.

The caller's cost is one `deque.extend` per metric (atomic under the GIL, so no lock on the hot
path). The flusher wakes every `flush_interval_s`, or sooner when
`flush_points` points are waiting, so a store round trip (tens of ms on SQLite) is paid once per
batch instead of once per step.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MetricQueue"]

_log = logging.getLogger(__name__)
_BATCH_POINTS = 1000  # MLflow's MAX_METRICS_PER_BATCH


class MetricQueue:
    """Buffer metric points and send them as `Metric` batches.

    `send` gets at most 1000 `mlflow.entities.Metric`s per call. A failed send keeps its points
    for the next try (up to `max_points`, oldest dropped first); `flush()` raises the failure.
    """

    def __init__(self, send: Callable[[list[Any]], None], *, flush_interval_s: float = 1.0,
                 flush_points: int = 5000, max_points: int = 1_000_000) -> None:
        self._send = send
        self._interval_s = flush_interval_s
        self._wake_atoms = 4 * flush_points
        self._points: collections.deque = collections.deque()  # key, value, step, time, key, ...
        # Points the store did not take yet; during an outage the oldest go first.
        self._pending: collections.deque = collections.deque(maxlen=max_points)
        self._key_ok: dict[str, bool] = {}
        self._lock = threading.Lock()  # one flush at a time keeps points in call order
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._loop, name="llmos-metrics", daemon=True)
        self._thread.start()

    def put(self, metrics: Mapping[str, float], step: int) -> None:
        # Each point goes in as four flat atoms, not as a tuple or dict: a str or float is not
        # tracked by the cyclic GC, so a full queue adds nothing for a gen-2 collection to walk
        # (a collection of a torch-sized heap stalls the loop for 100+ ms). One extend() is atomic
        # under the GIL, so the flusher always sees whole points.
        # float() here, not in the flusher: a tensor held in the queue would keep its autograd
        # graph (and device memory) alive until the next flush.
        t = time.time()
        for key, value in metrics.items():
            self._points.extend((key, float(value), step, t))
        if len(self._points) >= self._wake_atoms:
            self._wake.set()

    def flush(self) -> None:
        """Send everything queued so far; raise the store's error if it fails."""
        from mlflow.entities import Metric

        with self._lock:
            pop = self._points.popleft
            for _ in range(len(self._points) // 4):
                key, value, step, t = pop(), pop(), pop(), pop()
                if self._valid(key):
                    self._pending.append(Metric(key, value, int(t * 1000), int(step)))
            while self._pending:
                chunk = list(itertools.islice(self._pending, _BATCH_POINTS))
                self._send(chunk)
                for _ in chunk:
                    self._pending.popleft()
            self._failing = False

    def close(self) -> None:
        """Stop the thread and flush what is left (raises if the last flush fails)."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self.flush()

    def _valid(self, key: str) -> bool:
        ok = self._key_ok.get(key)
        if ok is None:
            from mlflow.exceptions import MlflowException
            from mlflow.utils.validation import _validate_metric_name

            try:
                _validate_metric_name(key)
                ok = len(key) <= 250
            except MlflowException:
                ok = False
            if not ok:
                # One bad name must not poison every batch it travels in: drop it, say so once.
                _log.warning("metric name %r is not accepted by MLflow; its values are dropped", key)
            self._key_ok[key] = ok
        return ok

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:
                if not self._failing:  # warn once per outage, retry quietly
                    _log.warning("logging metrics to MLflow failed, will retry: %s", exc)
                self._failing = True
