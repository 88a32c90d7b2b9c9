"""The front's metrics with literals: cumulative latency buckets, statuses and failure kinds per
replica, readiness from the route table, and a replica's series gone once it leaves the set."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from llmos.deploy._front_metrics import NO_REPLICA, FrontMetrics
from llmos.deploy._route_table import RouteTable
from llmos.deploy._routes import Route, RouteSet


def _samples(metrics: FrontMetrics) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(metrics.render()[0].decode()) for s in family.samples}


def _routes(*ids: str) -> RouteSet:
    return RouteSet("demo", 5.0, tuple(Route(i, 1000 + n, "demo/1#0", True, False) for n, i in enumerate(ids)))


def test_per_replica_series_and_their_removal() -> None:
    table = RouteTable()
    table.apply(_routes("r1", "r2"))
    metrics = FrontMetrics(table)
    for seconds in (0.004, 0.02, 3.0):
        metrics.answered("r1", 200, seconds)
    metrics.answered("r2", 500, 0.01)
    metrics.failed("r2", "connect")
    metrics.failed(NO_REPLICA, "unavailable")
    got = _samples(metrics)

    def at(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    assert at("llmos_front_requests_total", replica="r1", status="200") == 3
    assert at("llmos_front_requests_total", replica="r2", status="500") == 1
    assert at("llmos_front_request_latency_seconds_bucket", replica="r1", le="0.005") == 1
    assert at("llmos_front_request_latency_seconds_bucket", replica="r1", le="0.025") == 2
    assert at("llmos_front_request_latency_seconds_bucket", replica="r1", le="2.5") == 2
    assert at("llmos_front_request_latency_seconds_bucket", replica="r1", le="+Inf") == 3
    assert abs(at("llmos_front_request_latency_seconds_sum", replica="r1") - 3.024) < 1e-9
    assert at("llmos_front_errors_total", replica="r2", kind="connect") == 1
    assert at("llmos_front_errors_total", replica="", kind="unavailable") == 1
    assert at("llmos_front_replica_ready", replica="r1") == 1  # ready as the controller published it
    table.report_connect_failure("r1")
    assert _samples(metrics)[("llmos_front_replica_ready", frozenset({("replica", "r1")}))] == 0
    table.apply(_routes("r1"))  # r2 left the replica set
    got = _samples(metrics)
    assert not any(dict(labels).get("replica") == "r2" for _, labels in got)
    assert ("llmos_front_errors_total", frozenset({("replica", ""), ("kind", "unavailable")})) in got
