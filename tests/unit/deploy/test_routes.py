"""The files the controller and the front process exchange, and what a starting controller does
about the front an earlier one left: literals, no processes."""

from __future__ import annotations

import pytest

from llmos.deploy._front_keeper import FrontPlan, front_plan
from llmos.deploy._routes import (
    FrontReport,
    ReplicaReport,
    Route,
    RouteSet,
    decode_report,
    decode_routes,
    encode_report,
    encode_routes,
    read_report,
    write_atomic,
)
from llmos.deploy._state import SavedFront


def test_routes_round_trip_through_an_atomic_durable_file(tmp_path):
    routes = RouteSet("demo", 5.0, (Route("r1", 40001, "m/1#abc", True, False),
                                    Route("r2", 40002, "m/2#def", False, True)))
    path = tmp_path / "routes.json"
    write_atomic(path, encode_routes(routes), durable=True)
    assert decode_routes(path.read_text()) == routes
    write_atomic(path, encode_routes(RouteSet("demo", 5.0, ())), durable=True)  # replaced whole
    assert decode_routes(path.read_text()).routes == ()
    assert [p.name for p in tmp_path.iterdir()] == ["routes.json"]  # no temp file left behind


def test_report_round_trips_and_a_missing_or_torn_one_reads_as_none(tmp_path):
    report = FrontReport(4242, {"r1": ReplicaReport(True, True, False, 2, 10, 1.25, 80.5),
                                "r2": ReplicaReport(False, False, True, 0, 0, 0.0, None)})
    assert decode_report(encode_report(report)) == report
    assert read_report(tmp_path) is None
    (tmp_path / "front-report.json").write_text(encode_report(report))
    assert read_report(tmp_path) == report
    (tmp_path / "front-report.json").write_text('{"format": 1, "pid": 1')
    assert read_report(tmp_path) is None


@pytest.mark.parametrize("text, problem", [
    ('{"format": 2, "name": "demo", "load_window_s": 5, "routes": []}', "format 2, expected 1"),
    ('[1, 2]', "format 'list', expected 1"),
    ('{"format": 1, "name": "demo", "load_window_s": 5}', "not a routes file: KeyError('routes')"),
    ('{"format": 1, "name": "demo", "load_window_s": 5, "routes": [{"replica_id": "r1"}]}', "not a routes file"),
])
def test_a_bad_routes_file_is_a_clear_error(text, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        decode_routes(text)


SAVED = SavedFront(pid=4242, started_at=1700000000.5, port=8000)


def test_a_live_front_is_adopted_on_its_port():
    assert front_plan(SAVED, alive=True, front_port=8000) == FrontPlan("adopt", 8000)
    assert front_plan(SAVED, alive=True, front_port=0) == FrontPlan("adopt", 8000)  # 0: whichever it has


def test_a_front_that_died_meanwhile_starts_again_on_the_same_port():
    assert front_plan(SAVED, alive=False, front_port=8000) == FrontPlan("start", 8000)
    assert front_plan(SAVED, alive=False, front_port=0) == FrontPlan("start", 8000)


def test_a_front_on_another_port_than_asked_is_replaced_and_none_recorded_is_started():
    assert front_plan(SAVED, alive=True, front_port=9000) == FrontPlan("replace", 9000)
    assert front_plan(SAVED, alive=False, front_port=9000) == FrontPlan("start", 9000)
    assert front_plan(None, alive=False, front_port=0) == FrontPlan("start", 0)
