"""`/metrics` in-process: queue by class and project, jobs by state and capacity read from the
database at each scrape; the round histogram and preemption counter the loop feeds; no token."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from llmos.control._app import create_app
from llmos.control._auth import Caller
from llmos.control._metrics import observe_round

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _scrape(client: TestClient) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")  # no Authorization header
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_queue_states_capacity_and_round_figures(service) -> None:
    client = TestClient(create_app(service, {"pid": 1}))
    ann = Caller(owner="ann", role="admin", source="test")  # an admin: nlp and vision need no membership or grant
    for name, priority, project in (("a", "low", "nlp"), ("b", "low", "nlp"), ("c", "high", "vision")):
        service.submit(ann, {"kind": "command", "name": name, "run": ["true"], "resources": {"cpus": 1}},
                       priority=priority, project=project)
    before = _scrape(client)
    assert before[("llmos_queue_length", frozenset({("class", "low"), ("project", "nlp")}))] == 2
    assert before[("llmos_queue_length", frozenset({("class", "high"), ("project", "vision")}))] == 1
    assert before[("llmos_jobs", frozenset({("state", "QUEUED")}))] == 3
    assert before[("llmos_jobs", frozenset({("state", "RUNNING")}))] == 0
    assert before[("llmos_capacity", frozenset({("node", "local"), ("resource", "cpus")}))] == 2
    assert before[("llmos_capacity", frozenset({("node", "local"), ("resource", "memory_gb")}))] == 8
    assert before[("llmos_allocated", frozenset({("node", "local"), ("resource", "cpus")}))] == 0
    observe_round(0.004, preempts=2)
    observe_round(0.2)
    after = _scrape(client)
    count, preempted = ("llmos_scheduler_round_seconds_count", frozenset()), ("llmos_scheduler_preemptions_total",
                                                                              frozenset())
    assert after[count] - before[count] == 2 and after[preempted] - before[preempted] == 2
    bucket = ("llmos_scheduler_round_seconds_bucket", frozenset({("le", "0.005")}))
    assert after[bucket] - before[bucket] == 1  # 4 ms in the 5 ms bucket, 200 ms above it


def test_the_grafana_dashboard_plots_only_series_that_exist(service) -> None:
    """docs/grafana-llmos.json: every series a panel queries is one the control plane or a front exports."""
    import json
    import re
    from pathlib import Path

    from llmos.deploy._front_metrics import FrontMetrics
    from llmos.deploy._route_table import RouteTable
    from llmos.deploy._routes import Route, RouteSet

    observe_round(0.01, preempts=1)
    service.submit(Caller(owner="ann", role="admin", source="test"),
                   {"kind": "command", "name": "q", "run": ["true"], "resources": {"cpus": 1}})
    exported = {name for name, _ in _scrape(TestClient(create_app(service, {"pid": 1})))}
    table = RouteTable()
    table.apply(RouteSet("demo", 5.0, (Route("r1", 1, "demo/1#0", True, False),)))
    front = FrontMetrics(table)
    front.answered("r1", 200, 0.01)
    front.failed("", "unavailable")
    exported |= {s.name for family in text_string_to_metric_families(front.render()[0].decode())
                 for s in family.samples}
    dashboard = json.loads((Path(__file__).parents[3] / "docs" / "grafana-llmos.json").read_text())
    queried = {name for panel in dashboard["panels"] for target in panel.get("targets", [])
               for name in re.findall(r"\bllmos_[a-z_]+", target["expr"])}
    assert queried and queried <= exported, queried - exported
    assert {"llmos_front_request_latency_seconds_bucket", "llmos_scheduler_round_seconds_bucket",
            "llmos_scheduler_preemptions_total", "llmos_allocated", "llmos_capacity"} <= queried
