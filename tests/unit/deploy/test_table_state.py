"""The router's load accounting and the persisted state, without processes or network."""

from __future__ import annotations

import os

import pytest

from llmos.deploy import DeployError
from llmos.deploy._process import ProcHandle
from llmos.deploy._state import SavedReplica, SavedState, load_state, save_state
from llmos.deploy._table import UNHEALTHY_AFTER, ReplicaRecord, ReplicaTable


def record(rid: str = "r1") -> ReplicaRecord:
    return ReplicaRecord(rid, "m/1#abc", 1234, ProcHandle(os.getpid(), started_at=0.0), started_s=0.0)


def test_mean_outstanding_is_the_time_integral_over_the_window():
    r = record()
    r._area_t = 0.0
    r.sample(0.0)
    r.outstanding = 2  # 2 in flight from t=0 to t=3
    r.sample(3.0)
    r.outstanding = 0  # then idle until t=4
    r.sample(4.0)
    assert r.mean_outstanding(4.0, window_s=10) == pytest.approx(6 / 4)
    assert r.mean_outstanding(4.0, window_s=1) == pytest.approx(0.0)  # only the idle second


def test_p95_over_recent_latencies_only():
    r = record()
    r._latencies.extend((10.0, s / 1000) for s in range(1, 101))  # 1..100 ms at t=10
    r._latencies.append((1.0, 5.0))  # an old 5 s outlier outside the window
    assert r.p95_ms(12.0, window_s=5) == pytest.approx(95.0)
    assert r.p95_ms(30.0, window_s=5) is None


def test_acquire_counts_and_skips_draining_and_unready():
    table = ReplicaTable()
    for rid in ("r1", "r2", "r3"):
        table.add(record(rid))
    table.report_probe("r1", True)
    table.report_probe("r2", True)  # r3 never answered: not routable
    first, second = table.acquire(frozenset()), table.acquire(frozenset())
    assert {first[0], second[0]} == {"r1", "r2"}
    table.begin_drain("r1", now=5.0)
    assert table.acquire(frozenset())[0] == "r2"
    assert table.acquire(frozenset({"r2"})) is None
    table.release("r1", 0.01)
    assert table.get("r1").outstanding == 0 and table.get("r2").outstanding == 2


def test_a_ready_replica_survives_a_slow_probe_but_not_several():
    table = ReplicaTable()
    table.add(record())
    table.report_probe("r1", True)
    for _ in range(UNHEALTHY_AFTER - 1):
        table.report_probe("r1", False)
    assert table.get("r1").routable
    table.report_probe("r1", False)
    assert not table.get("r1").routable and table.get("r1").phase == "ready"
    table.report_connect_failure("r1")
    table.report_probe("r1", True)
    assert table.get("r1").routable


def test_state_round_trips_and_a_corrupt_file_is_a_clear_error(tmp_path):
    state = SavedState("demo", "m/1#abc", 2, 5, {"m/1#abc": {"kind": "serve", "model": "m/1"}},
                       [SavedReplica("r4", 4242, 1700000000.5, 40001, "m/1#abc", False)])
    save_state(tmp_path, state)
    assert load_state(tmp_path) == state
    assert load_state(tmp_path / "nothing-here") is None
    (tmp_path / "deployment.json").write_text('{"name": "demo"}')
    with pytest.raises(DeployError, match="cannot be read") as err:
        load_state(tmp_path)
    assert "move the file aside" in err.value.hint


def test_only_the_newest_replica_logs_are_kept(tmp_path):
    from llmos.deploy._supervisor import KEEP_LOGS, Supervisor

    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(1, KEEP_LOGS + 11):
        (logs / f"r{i}.log").write_text("x")
    table = ReplicaTable()
    table.add(record("r3"))  # still running: its log stays
    Supervisor("demo", table, tmp_path, spawn=None)._prune_logs()  # type: ignore[arg-type]
    kept = sorted(int(p.stem[1:]) for p in logs.glob("r*.log"))
    assert kept == [3, *range(11, KEEP_LOGS + 11)]
