"""The front's table (load accounting, routing, applying the controller's set), the controller's
table (what the front reports, when a drain is done) and the persisted state, without processes
or network."""

from __future__ import annotations

import json
import os

import pytest

from llmos.deploy import DeployError
from llmos.deploy._process import ProcHandle
from llmos.deploy._route_table import UNHEALTHY_AFTER, RouteState, RouteTable
from llmos.deploy._routes import FrontReport, ReplicaReport, Route, RouteSet
from llmos.deploy._state import SavedFront, SavedReplica, SavedState, load_state, save_state
from llmos.deploy._table import ReplicaRecord, ReplicaTable

REV = "m/1#abc"


def route(rid: str, port: int = 40001, ready: bool = False, draining: bool = False) -> Route:
    return Route(rid, port, REV, ready, draining)


def front_table(*routes: Route) -> RouteTable:
    table = RouteTable()
    table.apply(RouteSet("demo", 5.0, routes))
    return table


def test_mean_outstanding_is_the_time_integral_over_the_window():
    r = RouteState("r1", 1234)
    r._area_t = 0.0
    r.sample(0.0)
    r.outstanding = 2  # 2 in flight from t=0 to t=3
    r.sample(3.0)
    r.outstanding = 0  # then idle until t=4
    r.sample(4.0)
    assert r.mean_outstanding(4.0, window_s=10) == pytest.approx(6 / 4)
    assert r.mean_outstanding(4.0, window_s=1) == pytest.approx(0.0)  # only the idle second


def test_p95_over_recent_latencies_only():
    r = RouteState("r1", 1234)
    r._latencies.extend((10.0, s / 1000) for s in range(1, 101))  # 1..100 ms at t=10
    r._latencies.append((1.0, 5.0))  # an old 5 s outlier outside the window
    assert r.p95_ms(12.0, window_s=5) == pytest.approx(95.0)
    assert r.p95_ms(30.0, window_s=5) is None


def test_acquire_counts_and_skips_draining_and_unready():
    table = front_table(route("r1"), route("r2"), route("r3"))
    table.report_probe("r1", True)
    table.report_probe("r2", True)  # r3 never answered: not routable
    first, second = table.acquire(frozenset()), table.acquire(frozenset())
    assert {first[0], second[0]} == {"r1", "r2"}
    table.apply(RouteSet("demo", 5.0, (route("r1", draining=True), route("r2"), route("r3"))))
    assert table.acquire(frozenset())[0] == "r2"
    assert table.acquire(frozenset({"r2"})) is None
    table.release("r1", 0.01)
    assert table.get("r1").outstanding == 0 and table.get("r2").outstanding == 2


def test_a_ready_replica_survives_a_slow_probe_but_not_several():
    table = front_table(route("r1"))
    table.report_probe("r1", True)
    for _ in range(UNHEALTHY_AFTER - 1):
        table.report_probe("r1", False)
    assert table.get("r1").routable
    table.report_probe("r1", False)
    assert not table.get("r1").routable and table.get("r1").ever_ready
    table.report_connect_failure("r1")
    table.report_probe("r1", True)
    assert table.get("r1").routable


def test_applying_a_set_trusts_the_controller_only_for_replicas_the_front_does_not_know():
    # A front started again routes at once to replicas the controller knew ready.
    table = front_table(route("r1", ready=True), route("r2", 40002, ready=False))
    assert table.acquire(frozenset()) == ("r1", "127.0.0.1", 40001)
    table.report_connect_failure("r1")  # what this front saw wins over the controller's word...
    table.apply(RouteSet("demo", 2.0, (route("r1", ready=True), route("r2", 40002, ready=True))))
    assert not table.get("r1").routable and not table.get("r2").routable
    # ...a drain is never undone, and a replica gone from the set is gone; a port change is a new replica.
    table.apply(RouteSet("demo", 2.0, (route("r1", draining=True), route("r2", 40009, ready=True))))
    table.apply(RouteSet("demo", 2.0, (route("r1", draining=False), route("r2", 40009, ready=True))))
    assert table.get("r1").draining and table.get("r2").routable and table.get("r2").port == 40009
    table.apply(RouteSet("renamed", 1.5, (route("r2", 40009),)))
    assert table.get("r1") is None and table.probe_targets() == [("r2", "127.0.0.1", 40009)]
    assert (table.name, table.load_window_s) == ("renamed", 1.5)
    table.release("r1", 0.5)  # a request that was in flight on a dropped replica ends quietly


def test_the_report_shows_the_applied_drain_and_what_is_in_flight():
    table = front_table(route("r1", ready=True))
    assert table.acquire(frozenset()) == ("r1", "127.0.0.1", 40001)
    table.apply(RouteSet("demo", 5.0, (route("r1", ready=True, draining=True),)))
    seen = table.report(pid=4242)
    assert seen.pid == 4242
    assert seen.replicas["r1"].draining and seen.replicas["r1"].outstanding == 1
    assert seen.replicas["r1"].dispatched == 1 and seen.replicas["r1"].p95_ms is None


def record(rid: str = "r1") -> ReplicaRecord:
    return ReplicaRecord(rid, REV, 1234, ProcHandle(os.getpid(), started_at=0.0), started_s=0.0)


def seen(draining: bool = False, outstanding: int = 0, healthy: bool = True) -> ReplicaReport:
    return ReplicaReport(healthy, True, draining, outstanding, 7, 0.5, 12.0)


def test_a_drain_is_done_once_the_front_applied_it_and_has_nothing_in_flight():
    table = ReplicaTable()
    table.add(record("r1"))
    table.add(record("r2"))
    table.begin_drain("r1", now=1.0)
    table.apply_report(FrontReport(99, {"r1": seen(outstanding=0), "r2": seen()}))
    assert not table.get("r1").drain_done  # the front had not read the drain yet: it may still send
    table.apply_report(FrontReport(99, {"r1": seen(draining=True, outstanding=1), "r2": seen()}))
    assert not table.get("r1").drain_done and table.get("r1").outstanding == 1
    table.apply_report(FrontReport(99, {"r1": seen(draining=True, outstanding=0), "r2": seen()}))
    assert table.get("r1").drain_done and not table.get("r2").drain_done
    r2 = table.get("r2")
    assert (r2.healthy, r2.ever_ready, r2.dispatched, r2.mean_outstanding, r2.p95_ms) == (True, True, 7, 0.5, 12.0)


def test_with_no_front_every_drain_is_done_and_the_published_set_says_what_the_controller_knows():
    table = ReplicaTable()
    table.add(record("r1"))
    table.add(record("r2"))
    table.set_probed("r2", True)
    table.begin_drain("r1", now=None)
    assert table.routes("demo", 3.0) == RouteSet("demo", 3.0, (Route("r1", 1234, REV, False, True),
                                                                Route("r2", 1234, REV, True, False)))
    table.apply_report(FrontReport(99, {"r2": seen(healthy=False)}))  # failing probes: published as not ready
    assert table.routes("demo", 3.0).routes[1].ready is False and table.get("r2").ever_ready
    table.front_gone()
    assert table.get("r1").drain_done and not table.get("r2").drain_done


def test_state_round_trips_and_a_corrupt_file_is_a_clear_error(tmp_path):
    state = SavedState("demo", REV, 2, 5, {REV: {"kind": "serve", "model": "m/1"}},
                       [SavedReplica("r4", 4242, 1700000000.5, 40001, REV, False)],
                       front=SavedFront(4240, 1700000000.25, 8000))
    save_state(tmp_path, state)
    assert load_state(tmp_path) == state
    assert [p.name for p in tmp_path.iterdir()] == ["deployment.json"]  # no temp file left
    assert load_state(tmp_path / "nothing-here") is None
    (tmp_path / "deployment.json").write_text('{"name": "demo"}')
    with pytest.raises(DeployError, match="cannot be read") as err:
        load_state(tmp_path)
    assert "move the file aside" in err.value.hint


def test_a_state_file_from_before_the_front_process_still_loads(tmp_path):
    # Written by a daemon whose front ran in its own process: adopted replicas, no front to adopt.
    (tmp_path / "deployment.json").write_text(json.dumps({
        "name": "demo", "target": REV, "desired": 1, "next_replica": 2, "jobs": {}, "format": 1,
        "replicas": [{"replica_id": "r1", "pid": 4242, "started_at": 1.5, "port": 40001, "revision": REV,
                      "draining": False}]}))
    state = load_state(tmp_path)
    assert state.front is None and state.replicas[0].pid == 4242 and state.format == 2
    (tmp_path / "deployment.json").write_text(json.dumps({**json.loads((tmp_path / "deployment.json").read_text()),
                                                          "format": 7}))
    with pytest.raises(DeployError, match=r"format 7, expected one of \(1, 2\)"):
        load_state(tmp_path)


def test_only_the_newest_replica_logs_are_kept(tmp_path):
    from llmos.deploy._supervisor import KEEP_LOGS, Supervisor

    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(1, KEEP_LOGS + 11):
        (logs / f"r{i}.log").write_text("x")
    (logs / "front.log").write_text("x")
    table = ReplicaTable()
    table.add(record("r3"))  # still running: its log stays
    Supervisor("demo", table, tmp_path, spawn=None)._prune_logs()  # type: ignore[arg-type]
    kept = sorted(int(p.stem[1:]) for p in logs.glob("r*.log"))
    assert kept == [3, *range(11, KEEP_LOGS + 11)]
    assert (logs / "front.log").exists()
