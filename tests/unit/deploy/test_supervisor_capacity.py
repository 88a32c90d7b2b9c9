"""The supervisor waits for capacity (`NoCapacity`) without counting a failure; a real failure backs off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from llmos.deploy import NoCapacity
from llmos.deploy._process import default_spawn
from llmos.deploy._supervisor import Supervisor
from llmos.deploy._table import ReplicaTable
from llmos.spec import ServeJob

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


class FullThenFree:
    """A spawn on a machine that is full `full` times, then has room: it runs a real process."""

    def __init__(self, full: int) -> None:
        self.full, self.calls, self.started = full, 0, []

    def __call__(self, argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
        self.calls += 1
        if self.calls <= self.full:
            raise NoCapacity("no room for a replica", wanting="1 free core(s)")
        popen = default_spawn(SLEEP, env, log_path)
        self.started.append(popen)
        return popen


def supervisor(tmp_path: Path, spawn) -> tuple[Supervisor, str]:
    sup = Supervisor("demo", ReplicaTable(), tmp_path, spawn)
    return sup, sup.add_revision(ServeJob.model_validate({"kind": "serve", "name": "demo", "model": "demo/1"}))


def test_a_replica_waits_for_capacity_without_failures_and_says_so_once(tmp_path: Path) -> None:
    spawn = FullThenFree(full=2)
    sup, rev = supervisor(tmp_path, spawn)
    try:
        notes = [sup.start_replicas(rev, 1, now=t) for t in (0.0, 0.5, 1.0)]
        assert notes[0] == ["r1 waits for 1 free core(s)"]
        assert notes[1] == []  # still waiting: not said again every tick
        assert len(notes[2]) == 1 and notes[2][0].startswith("started r1 "), notes
        assert spawn.calls == 3  # no backoff between the tries
        assert sup.failures(rev) == 0
        assert [(r.replica_id, r.proc.pid) for r in sup.records()] == [("r1", spawn.started[0].pid)]
        # A later wait is a new one: said again, for the next replica's id.
        spawn.full = spawn.calls + 1
        assert sup.start_replicas(rev, 1, now=2.0) == ["r2 waits for 1 free core(s)"]
    finally:
        for popen in spawn.started:
            popen.kill()
            popen.wait()


def test_every_wanted_replica_is_asked_for_while_the_machine_is_full(tmp_path: Path) -> None:
    # Each try records one replica's demand with the control plane, so all the missing ones are asked for.
    spawn = FullThenFree(full=10)
    sup, rev = supervisor(tmp_path, spawn)
    assert sup.start_replicas(rev, 3, now=0.0) == ["3 replicas from r1 wait for 1 free core(s) each"]
    assert spawn.calls == 3 and sup.failures(rev) == 0 and not sup.records()


def test_a_spawn_that_fails_counts_a_failure_and_backs_off(tmp_path: Path) -> None:
    def broken(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
        raise OSError("no such program")

    sup, rev = supervisor(tmp_path, broken)
    notes = sup.start_replicas(rev, 1, now=0.0)
    assert notes == ["could not start r1: no such program; trying again in 0.5 s"]
    assert sup.failures(rev) == 1
    assert sup.start_replicas(rev, 1, now=0.1) == []  # backing off
    assert sup.start_replicas(rev, 1, now=1.0)[0].startswith("could not start r2")
