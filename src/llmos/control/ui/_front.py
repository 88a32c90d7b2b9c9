"""A deployment's traffic as its front router counts it: requests/s, p95 latency and errors.

The front serves cumulative Prometheus counters (`llmos.deploy._front_metrics`); the dashboard
keeps the previous scrape of each front and reports the rate and the p95 of the requests between the
two (the first scrape, with nothing to compare to, reports the totals since the front started).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FrontSample", "FrontScraper", "front_stats", "parse_front", "quantile"]


@dataclass(frozen=True)
class FrontSample:
    at_s: float
    requests: dict[str, float] = field(default_factory=dict)  # replica -> requests answered
    errors: dict[str, float] = field(default_factory=dict)  # replica ("" for none) -> failed at the front
    non_2xx: dict[str, float] = field(default_factory=dict)  # replica -> answered with 4xx/5xx
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)  # replica -> upper bound -> cumulative


def parse_front(text: str, at_s: float) -> FrontSample:
    """The front's `/metrics` text as per-replica totals."""
    from prometheus_client.parser import text_string_to_metric_families

    sample = FrontSample(at_s)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            replica = s.labels.get("replica", "")
            if s.name == "llmos_front_requests_total":
                _add(sample.requests, replica, s.value)
                if not s.labels.get("status", "").startswith("2"):
                    _add(sample.non_2xx, replica, s.value)
            elif s.name == "llmos_front_errors_total":
                _add(sample.errors, replica, s.value)
            elif s.name == "llmos_front_request_latency_seconds_bucket":
                sample.buckets.setdefault(replica, {})[float(s.labels["le"])] = s.value
    return sample


def _add(into: dict[str, float], key: str, value: float) -> None:
    into[key] = into.get(key, 0.0) + value


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative `buckets` (upper bound -> count); None: no requests.
    Linear inside the bucket; in the +Inf bucket, the highest finite bound."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            inside = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / inside if inside else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


def front_stats(now: FrontSample, before: FrontSample | None) -> dict[str, Any]:
    """requests/s, p95 (ms) and errors between two scrapes (all of `now` when `before` is None), in
    total and per replica. A front that restarted (counters went down) counts from zero."""
    if before is not None and sum(now.requests.values()) < sum(before.requests.values()):
        before = None
    span_s = (now.at_s - before.at_s) if before is not None else 0.0
    prev = before or FrontSample(now.at_s)
    replicas = sorted(set(now.requests) | set(now.buckets) | {r for r in now.errors if r})
    per = {r: _stats(now, prev, r, span_s) for r in replicas}
    total_buckets: dict[float, float] = {}
    for r in replicas:
        for bound, n in _delta(now.buckets.get(r, {}), prev.buckets.get(r, {})).items():
            total_buckets[bound] = total_buckets.get(bound, 0.0) + n
    requests = sum(now.requests.values()) - sum(prev.requests.values())
    errors = (sum(now.errors.values()) - sum(prev.errors.values())
              + sum(now.non_2xx.values()) - sum(prev.non_2xx.values()))
    p95 = quantile(0.95, total_buckets)
    return {"window_s": round(span_s, 1) if before is not None else None, "requests": requests,
            "requests_per_s": round(requests / span_s, 2) if span_s > 0 else None,
            "p95_ms": None if p95 is None else round(p95 * 1000, 1), "errors": errors, "replicas": per}


def _stats(now: FrontSample, prev: FrontSample, replica: str, span_s: float) -> dict[str, Any]:
    requests = now.requests.get(replica, 0.0) - prev.requests.get(replica, 0.0)
    errors = (now.errors.get(replica, 0.0) - prev.errors.get(replica, 0.0)
              + now.non_2xx.get(replica, 0.0) - prev.non_2xx.get(replica, 0.0))
    p95 = quantile(0.95, _delta(now.buckets.get(replica, {}), prev.buckets.get(replica, {})))
    return {"requests": requests, "requests_per_s": round(requests / span_s, 2) if span_s > 0 else None,
            "p95_ms": None if p95 is None else round(p95 * 1000, 1), "errors": errors}


def _delta(now: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {bound: n - before.get(bound, 0.0) for bound, n in now.items()}


class FrontScraper:
    """Scrapes each front at most every `min_interval_s` and keeps the scrape before it."""

    def __init__(self, min_interval_s: float = 1.0, timeout_s: float = 1.0) -> None:
        self.min_interval_s = min_interval_s
        self.timeout_s = timeout_s
        self._last: dict[str, tuple[FrontSample, FrontSample | None]] = {}

    def stats(self, name: str, front_url: str) -> dict[str, Any] | None:
        """None when the front does not answer (it is being restarted, say)."""
        import httpx

        now_s = time.time()
        latest, before = self._last.get(name, (None, None))
        if latest is None or now_s - latest.at_s >= self.min_interval_s:
            try:
                text = httpx.get(f"{front_url}/metrics", timeout=self.timeout_s).text
            except httpx.HTTPError:
                return None
            latest, before = parse_front(text, now_s), latest
            self._last[name] = (latest, before)
        return front_stats(latest, before)
