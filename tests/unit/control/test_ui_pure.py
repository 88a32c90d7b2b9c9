"""The dashboard's pure parts with literals: sessions, CSRF, redirects, paging, front traffic, lineage."""

from __future__ import annotations

import pytest

from llmos.control.ui._front import FrontSample, front_stats, parse_front, quantile
from llmos.control.ui._lineage import lineage_edges, lineage_layout, lineage_svg
from llmos.control.ui._models import mlflow_links
from llmos.control.ui._routes_auth import safe_next
from llmos.control.ui._routes_jobs import page_of
from llmos.control.ui._sessions import SessionStore, cookie_attributes, same_token


def test_sessions_expire_close_and_stay_bounded() -> None:
    store = SessionStore(idle_s=10, max_sessions=2)
    a = store.open("tok-a", "ann", "developer", now_s=0)
    assert a.id != a.csrf and "tok-a" not in a.id and len(a.id) >= 40
    assert store.get(a.id, now_s=9) is a
    assert store.get(a.id, now_s=18) is a  # each use restarts the idle clock
    assert store.get(a.id, now_s=29) is None  # idle for 11 s: closed
    b = store.open("tok-b", "bob", "viewer", now_s=30)
    c = store.open("tok-c", "cat", "viewer", now_s=31)
    d = store.open("tok-d", "dan", "viewer", now_s=32)  # the oldest (b) makes room
    assert store.get(b.id, now_s=33) is None and store.get(c.id, now_s=33) is c and store.get(d.id, now_s=33) is d
    store.close(c.id)
    assert store.get(c.id, now_s=34) is None and store.get(None) is None and store.get("") is None
    assert "tok-d" not in repr(d)


def test_cookie_attributes_and_csrf_comparison() -> None:
    assert cookie_attributes(False) == {"httponly": True, "samesite": "strict", "secure": False, "path": "/ui"}
    assert cookie_attributes(True, 60)["secure"] is True and cookie_attributes(True, 60)["max_age"] == 60
    assert same_token("abc", "abc") and not same_token("abc", "abd")
    assert not same_token("abc", None) and not same_token("", "") and not same_token("abc", "")


@pytest.mark.parametrize(("given", "expected"), [
    ("/ui/jobs/3", "/ui/jobs/3"), ("/ui/jobs?state=RUNNING", "/ui/jobs?state=RUNNING"), (None, "/ui/jobs"),
    ("https://evil.example/ui/", "/ui/jobs"), ("//evil.example/ui/", "/ui/jobs"), ("/v1/jobs", "/ui/jobs"),
    ("/ui/\\evil", "/ui/jobs")])
def test_after_login_only_dashboard_paths(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


def test_page_of_gives_the_next_cursor() -> None:
    rows = [{"id": i} for i in range(10, 0, -1)]
    assert page_of(rows[:4], 3) == (rows[:3], 8)
    assert page_of(rows[:3], 3) == (rows[:3], None)
    assert page_of([], 3) == ([], None)


FRONT = """\
# TYPE llmos_front_requests counter
llmos_front_requests_total{replica="r1",status="200"} 90.0
llmos_front_requests_total{replica="r1",status="503"} 2.0
llmos_front_requests_total{replica="r2",status="200"} 8.0
# TYPE llmos_front_request_latency_seconds histogram
llmos_front_request_latency_seconds_bucket{le="0.01",replica="r1"} 50.0
llmos_front_request_latency_seconds_bucket{le="0.1",replica="r1"} 92.0
llmos_front_request_latency_seconds_bucket{le="+Inf",replica="r1"} 92.0
llmos_front_request_latency_seconds_count{replica="r1"} 92.0
llmos_front_request_latency_seconds_sum{replica="r1"} 2.0
llmos_front_request_latency_seconds_bucket{le="0.01",replica="r2"} 0.0
llmos_front_request_latency_seconds_bucket{le="0.1",replica="r2"} 0.0
llmos_front_request_latency_seconds_bucket{le="+Inf",replica="r2"} 8.0
# TYPE llmos_front_errors counter
llmos_front_errors_total{kind="unavailable",replica=""} 3.0
"""


def test_front_traffic_between_two_scrapes() -> None:
    now = parse_front(FRONT, at_s=110.0)
    assert now.requests == {"r1": 92.0, "r2": 8.0} and now.non_2xx == {"r1": 2.0} and now.errors == {"": 3.0}
    first = front_stats(now, None)
    assert first["requests"] == 100 and first["requests_per_s"] is None and first["errors"] == 5
    before = FrontSample(100.0, {"r1": 40.0, "r2": 8.0}, {}, {}, {"r1": {0.01: 40.0, 0.1: 40.0, float("inf"): 40.0},
                                                                   "r2": {0.01: 0, 0.1: 0, float("inf"): 8.0}})
    stats = front_stats(now, before)
    assert stats["window_s"] == 10.0 and stats["requests"] == 52 and stats["requests_per_s"] == 5.2
    assert stats["errors"] == 5  # 2 answered 503 + 3 that no replica could take
    # r1's 52 new requests: 10 under 10 ms, 42 between 10 and 100 ms; p95 at rank 49.4 -> 10 + 90 * 39.4/42
    assert stats["replicas"]["r1"]["p95_ms"] == pytest.approx(94.4, abs=0.1)
    assert stats["replicas"]["r2"] == {"requests": 0, "requests_per_s": 0.0, "p95_ms": None, "errors": 0}
    restarted = front_stats(FrontSample(120.0, {"r1": 1.0}), now)  # counters went down: counted from zero
    assert restarted["requests"] == 1 and restarted["window_s"] is None


def test_quantile_like_prometheus() -> None:
    assert quantile(0.5, {}) is None and quantile(0.5, {1.0: 0, float("inf"): 0}) is None
    assert quantile(0.5, {1.0: 10, 2.0: 20, float("inf"): 20}) == pytest.approx(1.0)
    assert quantile(0.95, {1.0: 0, 2.0: 0, float("inf"): 10}) == 2.0  # all above the last bound


def test_lineage_edges_layout_and_svg() -> None:
    versions = [{"version": "1", "tags": {"base_model": "minilm-l6"}},
                {"version": "2", "tags": {"parent_name": "sent", "parent_version": "1"}},
                {"version": "3", "tags": {"parent_name": "other", "parent_version": "4"}},
                {"version": "4", "tags": {}}]
    edges = lineage_edges("sent", versions)
    assert edges == [("minilm-l6", "sent/1"), ("sent/1", "sent/2"), ("other/4", "sent/3")]
    nodes = [f"sent/{v['version']}" for v in versions]
    at = lineage_layout(nodes, edges)
    assert at["minilm-l6"][0] == 0 and at["sent/1"][0] == 1 and at["sent/2"][0] == 2 and at["sent/3"][0] == 1
    assert at["sent/4"] == (0, 0) and len(set(at.values())) == len(at)  # no two boxes overlap
    assert lineage_layout(["a", "b"], [("a", "b"), ("b", "a")])  # a cycle is cut, not followed forever
    svg = lineage_svg(nodes, edges, {"sent/2": "production"}, {"other/4": "/ui/models/other"})
    assert svg.startswith("<svg") and svg.count("<line") == 3 and svg.count("<rect") == 6
    assert '<a href="/ui/models/other">' in svg and "production" in svg and "<script" not in svg
    assert "&lt;b&gt;" in lineage_svg(["<b>"], [])  # names are escaped
    assert lineage_svg([], []) == ""


def test_mlflow_links_only_for_a_server() -> None:
    assert mlflow_links("sqlite:////tmp/m.db", "m", "1", "abc") == {}
    links = mlflow_links("http://mlflow:5000/", "sent", "2", "r1")
    assert links == {"model": "http://mlflow:5000/#/models/sent", "version": "http://mlflow:5000/#/models/sent/versions/2",
                     "run": "http://mlflow:5000/#/runs/r1"}


def test_every_template_and_asset_ships_in_the_wheel() -> None:
    import tomllib
    from pathlib import Path

    import llmos

    root = Path(llmos.__file__).parent
    pyproject = Path(__file__).parents[3] / "pyproject.toml"
    globs = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["llmos"]
    shipped = {p for g in globs for p in root.glob(g)}
    assets = [p for p in (root / "control" / "ui").rglob("*") if p.is_file() and p.suffix != ".py"
              and "__pycache__" not in p.parts]
    assert assets and [p for p in assets if p not in shipped] == []


def test_nodes_fragment_shows_gpus_and_cluster_nodes_with_their_holders() -> None:
    """The GPU and cluster branches of the nodes page, which this CPU-only machine never reaches live."""
    from llmos.control.ui._web import UI

    top = {"cores": [{"id": 0, "percent": 50.0, "job": "7"}, {"id": 1, "percent": None, "job": "sent-r1"}],
           "memory": {"total_gb": 64.0, "used_gb": 20.0, "schedulable_gb": 60.0, "reserved_by_jobs_gb": 8.0},
           "gpus": [{"index": 0, "name": "NVIDIA H100", "memory_gb": 80.0, "util_percent": 93.0,
                     "memory_used_gb": 41.5, "job": "7"},
                    {"index": 1, "name": "NVIDIA H100", "memory_gb": 80.0, "util_percent": None,
                     "memory_used_gb": None, "job": None}],
           "jobs": [{"id": "7", "name": "sft", "owner": "ann", "state": "RUNNING", "cores": [0], "gpus": [0],
                     "memory_gb": 8.0}],
           "nodes": [{"name": "node-a", "address": "10.0.0.2", "cpus": 16, "memory_gb": 128.0,
                      "gpus": [{"index": 0, "name": "NVIDIA H100"}],
                      "held": {"cpus": 4, "memory_gb": 8.0, "gpus": 1, "jobs": ["7"], "replicas": ["sent-r1"]}}]}
    html = UI(service=None).env.get_template("_nodes_body.html").render(  # type: ignore[arg-type]
        top=top, holders={h["id"]: h for h in top["jobs"]})
    assert html.count('<a href="/ui/jobs/7">job 7</a>') == 2 and "sft (ann)" in html
    assert "replica sent-r1" in html and "93%" in html and "41.5 / 80.0 GB" in html and "free" in html
    assert "node-a" in html and "4 / 16" in html and "sent-r1</td>" in html
