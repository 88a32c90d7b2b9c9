"""Prometheus metrics of one server, in a registry of its own (several servers can share a process
in tests). The names are a contract with the deployments layer: keep them."""

from __future__ import annotations

from typing import Any

__all__ = ["Metrics"]

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # the *_created series only add noise to every scrape

        self.registry = CollectorRegistry()
        self.requests = Counter("llmos_requests", "HTTP requests by route and status code",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("llmos_request_latency_seconds", "time from request to the end of the response",
                                 ["route"], buckets=_LATENCY_BUCKETS_S, registry=self.registry)
        self.batch_size = Histogram("llmos_batch_size", "inputs (or sequences) per forward pass",
                                    buckets=_BATCH_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("llmos_queue_depth", "inputs waiting for a forward pass", registry=self.registry)
        self.inflight = Gauge("llmos_inflight_requests", "requests being handled now", registry=self.registry)
        self.tokens = Counter("llmos_tokens", "tokens processed: prompt (inputs) and completion (generated)",
                              ["kind"], registry=self.registry)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def watch_queue(self, depth: Any) -> None:
        """Read the queue depth from `depth()` at each scrape, so it is never stale."""
        self.queue_depth.set_function(depth)
