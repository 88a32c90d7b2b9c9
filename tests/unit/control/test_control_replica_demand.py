"""Deployment replicas go through the scheduling policy: room is computed, never oversubscribed; a
replica with no room is a queued critical demand that preempts lower classes once, and the loop
leaves the spawn to the deployment."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_control_pure import _row  # one literal job row for both files

from llmos.control._auth import Caller
from llmos.control._capacity import Held, Need, demand_jobs, held_by, place_replica, too_big
from llmos.control._inventory import Gpu, Inventory
from llmos.control._snapshot import build_snapshot
from llmos.deploy import NoCapacity
from llmos.scheduler import PRIORITY_CLASSES, schedule

pytestmark = pytest.mark.timeout(120)
ADMIN = Caller("admin", "admin", "test")
PY = sys.executable
DEMAND = "deploy:tiny:waiting-0"


def test_room_for_a_replica_counts_jobs_and_replicas_and_names_what_is_missing() -> None:
    inv = Inventory(cores=(0, 1, 2, 3), memory_gb=16, gpus=(Gpu(0, "A", 80), Gpu(2, "A", 80)))
    job = json.dumps({"workers": [{"cores": [0, 1], "memory_gb": 6, "gpu_slots": [0], "gpus": [0]}]})
    held = held_by([job, None], [{"cores": [2], "gpus": [], "memory_gb": 4}])
    assert held == Held(frozenset({0, 1, 2}), 10.0, frozenset({0}))
    assert place_replica(inv, held, Need(1, 6, 1)) == ([3], [2])
    assert place_replica(inv, held, Need(2, 8, 2)) == "2 free core(s) and 8 GB of free memory and 2 free GPU(s)"
    assert too_big(inv, Need(2, 8, 2)) is None
    assert too_big(inv, Need(5, 0, 3)) == "5 cores but the control plane has 4; 3 GPU(s) but the control plane has 2"


def test_one_demand_preempts_one_set_of_victims_then_starts_once_they_exit() -> None:
    inv = Inventory(cores=(0, 1), memory_gb=8)
    demand = demand_jobs("deploy:tiny:", "p", Need(1), 1, since_s=5.0)
    assert [(j.job_id, j.priority, j.preemptible) for j in demand] == [(DEMAND, PRIORITY_CLASSES["critical"], False)]
    low = [_row(1, "RUNNING", "low", 1, [0]), _row(2, "RUNNING", "low", 1, [1])]
    decision = schedule(build_snapshot(10.0, inv, [], low, grace_s=30, waiting=demand))
    assert len(decision.preempts) == 1 and not decision.starts, decision
    victim = int(decision.preempts[0].job_id)
    assert DEMAND in decision.preempts[0].reason
    # While the victim checkpoints, later rounds see its cores as being freed and claimed by the same
    # demand: nobody else is preempted for it, and it does not start on cores still held.
    other = 3 - victim
    stopping = [_row(victim, "PREEMPTED", "low", 1, [victim - 1], stop_s=10.0), _row(other, "RUNNING", "low", 1,
                                                                                       [other - 1])]
    for now in (11.0, 12.0, 20.0):
        decision = schedule(build_snapshot(now, inv, [], stopping, grace_s=30, waiting=demand))
        assert not decision.preempts and not decision.starts, (now, decision)
    # The victim exited and was requeued: the demand starts first (its class), the victim waits.
    decision = schedule(build_snapshot(21.0, inv, [_row(victim, "QUEUED", "low", 1)], [stopping[1]], grace_s=30,
                                       waiting=demand))
    assert [s.job_id for s in decision.starts] == [DEMAND] and not decision.preempts


def test_a_demand_never_preempts_replicas_or_its_own_class() -> None:
    inv = Inventory(cores=(0, 1), memory_gb=8)
    crit = [_row(1, "RUNNING", "critical", 2, [0, 1])]
    decision = schedule(build_snapshot(10.0, inv, [], crit, grace_s=30,
                                       waiting=demand_jobs("deploy:tiny:", "p", Need(1), 1, 0.0)))
    assert decision.starts == () and decision.preempts == ()


# ---- the loop with a real deployment manager and real processes ------------------------------------
@pytest.fixture
def plane(engine, inventory, config, tmp_path: Path):
    from llmos.control._deployments import DeploymentManager
    from llmos.control._loop import ControlLoop
    from llmos.deploy import DeploymentController
    from llmos.spec import ServeJob

    manager = DeploymentManager(engine, inventory, log=lambda _m: None)
    loop = ControlLoop(engine, inventory, config, log=lambda _m: None)
    loop.deployments = manager
    # A controller that is never started: the test asks for its replica as its tick would.
    job = ServeJob.model_validate({"kind": "serve", "name": "tiny", "model": "tiny/1", "resources": {"cpus": 1}})
    ctrl = DeploymentController("tiny", job, state_dir=tmp_path / "deploy", front_port=0)
    manager.controllers["tiny"], manager.owners["tiny"] = ctrl, "admin"
    started = []

    def ask() -> object | None:
        """One try of the controller's spawn: a process pinned to free cores, or None (it waits)."""
        try:
            popen = manager._spawn(ctrl, [PY, "-c", "import time; time.sleep(60)"], dict(os.environ),
                                   tmp_path / "replica.log")
        except NoCapacity:
            return None
        started.append(popen)
        return popen

    yield SimpleNamespace(loop=loop, manager=manager, ask=ask)
    for popen in started:
        popen.kill()
        popen.wait()
    loop.stop_all("test over", timeout_s=5)


def _command(marker: Path) -> dict:
    # Sleeps on its first run (preempted by SIGTERM); succeeds at once when run again.
    prog = (f"import os, time, sys\np = {str(marker)!r}\n"
            f"if os.path.exists(p): sys.exit(0)\nopen(p, 'w').close(); time.sleep(60)\n")
    return {"kind": "command", "name": "low", "run": [PY, "-c", prog], "resources": {"cpus": 2}}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_waiting_replica_preempts_a_low_job_and_the_deployment_spawns_it(service, plane, tmp_path) -> None:
    low = service.submit(ADMIN, _command(tmp_path / "ran"), priority="low")["id"]
    deadline = time.monotonic() + 120  # per phase: real processes on a shared, slow 2-core machine
    # Until the job has written its marker, a SIGTERM would stop it before it knows it ran once,
    # and its rerun would sleep again (seen under load): preempt it only after that.
    while service.job(low)["state"] != "RUNNING" or not (tmp_path / "ran").exists():
        assert time.monotonic() < deadline
        plane.loop.tick()
        time.sleep(0.05)
    assert plane.ask() is None  # both cores are the job's: the replica waits, nothing oversubscribes
    assert plane.manager.list()[0]["waiting"] == 1 and len(plane.manager.waiting(time.time())) == 1
    replica = None
    while replica is None:  # each round: the loop decides, then the deployment asks again
        assert time.monotonic() < deadline, service.job(low)
        plane.loop.tick()
        replica = plane.ask()
        time.sleep(0.05)
    shown = service.job(low)
    moves = [(t["from"], t["to"]) for t in shown["transitions"]]
    assert moves.count(("RUNNING", "PREEMPTED")) == 1 and ("PREEMPTED", "QUEUED") in moves, moves
    assert shown["state"] == "QUEUED" and len(shown["attempts"]) == 1
    assert sorted(os.sched_getaffinity(replica.pid)) == [0]  # a core no job holds
    for _ in range(10):  # the replica holds a core: the 2-core job waits, nothing is preempted again
        plane.loop.tick()
        plane.ask() if plane.manager.waiting(time.time()) else None
        time.sleep(0.05)
    assert service.job(low)["state"] == "QUEUED"
    replica.kill()
    replica.wait()
    deadline = time.monotonic() + 120
    while service.job(low)["state"] != "SUCCEEDED":
        assert time.monotonic() < deadline, service.job(low)
        plane.loop.tick()
        time.sleep(0.05)
    assert [a["exit_code"] for a in service.job(low)["attempts"]] == [-15, 0]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_reading_deployments_while_a_tick_starts_a_replica_does_not_hang(service, plane) -> None:
    """A controller's tick holds its own lock and takes the manager's to place a replica; an API
    call that held the manager's lock and then asked the controller for its status (`deploy show`,
    `deploy ls`, the pipelines' deploy stages) waited for the tick forever while the tick waited for
    it: the daemon hung, its API unanswered. Here the tick's half is held on purpose."""
    import threading

    ctrl = plane.manager.controllers["tiny"]
    reads: list[object] = []
    readers = [threading.Thread(target=lambda: reads.append(plane.manager.show("tiny")), daemon=True),
               threading.Thread(target=lambda: reads.append(plane.manager.list()), daemon=True),
               threading.Thread(target=lambda: reads.append(plane.manager.holders()), daemon=True)]
    spawned: list[object] = []

    def tick() -> None:
        with ctrl._lock:  # as DeploymentController.tick holds it
            for reader in readers:
                reader.start()
            time.sleep(0.5)  # the readers are waiting now, for this controller's lock at most
            spawned.append(plane.ask())  # the spawn takes the manager's lock

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    ticker.join(timeout=30)
    for reader in readers:
        reader.join(timeout=30)
    assert not ticker.is_alive() and not any(r.is_alive() for r in readers), "deadlock: tick and API wait on each other"
    assert spawned and spawned[0] is not None  # the replica started (both cores were free)
    shown = [r for r in reads if isinstance(r, dict)]
    assert len(reads) == 3 and shown and shown[0]["name"] == "tiny"
