"""The metric queue alone, with a `send` that stands in for the store so outages can be staged."""

from __future__ import annotations

import gc

import pytest

from llmos.tracking._queue import MetricQueue


class FlakyStore:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.batches: list[list] = []

    def __call__(self, metrics: list) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store down")
        self.batches.append(metrics)


def test_points_survive_an_outage_in_order_and_in_mlflow_sized_batches() -> None:
    store = FlakyStore(failures=1)
    queue = MetricQueue(store, flush_interval_s=60, flush_points=10**9)  # flushed by hand
    for step in range(2500):
        queue.put({"loss": float(step), "lr": 0.1}, step)
    with pytest.raises(ConnectionError):
        queue.flush()
    queue.close()
    assert [len(b) for b in store.batches] == [1000, 1000, 1000, 1000, 1000]
    points = [m for batch in store.batches for m in batch]
    assert [(m.key, m.step) for m in points[:4]] == [("loss", 0), ("lr", 0), ("loss", 1), ("lr", 1)]
    assert [m.value for m in points if m.key == "loss"] == [float(s) for s in range(2500)]


def test_bad_names_are_dropped_not_retried() -> None:
    store = FlakyStore(failures=0)
    queue = MetricQueue(store, flush_interval_s=60)
    queue.put({"ok": 1.0, "not ok!": 2.0, "../escape": 3.0}, 0)
    queue.close()
    assert [m.key for batch in store.batches for m in batch] == ["ok"]


def test_queued_points_add_no_gc_tracked_objects() -> None:
    # A training process has a large heap; objects that the cyclic GC must walk make its periodic
    # full collections (100+ ms stalls) more frequent and slower.
    queue = MetricQueue(FlakyStore(failures=0), flush_interval_s=60, flush_points=10**9)
    gc.collect()
    before = len(gc.get_objects())
    for step in range(5000):
        queue.put({"loss": 1.0, "lr": 0.1}, step)
    assert len(gc.get_objects()) - before < 100
    queue.close()
