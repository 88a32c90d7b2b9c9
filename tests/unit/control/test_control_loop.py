"""The scheduling loop with the real local executor and real processes (tiny shell programs)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import pytest

from llmos.control._auth import Caller
from llmos.control._loop import ControlLoop
from llmos.executor import LocalExecutor, attempt_dir

pytestmark = pytest.mark.timeout(90)
ADMIN = Caller("admin", "admin", "test")
PY = sys.executable


def command(*argv: str, cpus: int = 1, name: str = "c") -> dict:
    return {"kind": "command", "name": name, "run": list(argv), "resources": {"cpus": cpus}}


def until(loop: ControlLoop, done: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "condition not reached"
        loop.tick()
        time.sleep(0.05)


def state(service, job_id: int) -> str:
    return service.job(job_id)["state"]


def holds(service, job_id: int) -> bool:
    from sqlalchemy import select

    from llmos.control._db import read
    from llmos.control._schema import jobs

    with read(service.engine) as conn:
        return conn.execute(select(jobs.c.holds).where(jobs.c.id == job_id)).scalar_one()


@pytest.fixture
def loop(engine, inventory, config):
    loop = ControlLoop(engine, inventory, config, log=lambda _m: None)
    yield loop
    loop.stop_all("test over", timeout_s=5)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_job_runs_pinned_to_its_cores_with_matching_threads(service, loop) -> None:
    probe = ("import os; print(sorted(os.sched_getaffinity(0)), os.environ['OMP_NUM_THREADS'], "
             "repr(os.environ['CUDA_VISIBLE_DEVICES']))")
    two = service.submit(ADMIN, command(PY, "-c", probe, cpus=2))["id"]
    until(loop, lambda: state(service, two) == "SUCCEEDED")
    one = service.submit(ADMIN, command(PY, "-c", probe, cpus=1))["id"]
    until(loop, lambda: state(service, one) == "SUCCEEDED")
    assert service.read_log(two, "attempt-1/output.log")["text"].strip() == "[0, 1] 2 ''"
    assert service.read_log(one, "attempt-1/output.log")["text"].strip() == "[0] 1 ''"
    shown = service.job(two)
    assert [t["to"] for t in shown["transitions"]] == ["QUEUED", "STARTING", "RUNNING", "SUCCEEDED"]
    assert shown["attempts"][0]["exit_code"] == 0 and shown["attempts"][0]["placement"]["workers"][0]["cores"] == [0, 1]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_failing_job_is_retried_then_fails_with_its_attempts_listed(service, loop) -> None:
    job_id = service.submit(ADMIN, command("sh", "-c", "echo try; exit 3"), max_retries=2)["id"]
    until(loop, lambda: state(service, job_id) == "FAILED")
    shown = service.job(job_id)
    assert [a["exit_code"] for a in shown["attempts"]] == [3, 3, 3]
    assert shown["failures"] == 3 and "no retries left" in shown["reason"]
    assert sum(t["to"] == "QUEUED" and "retry" in t["reason"] for t in shown["transitions"]) == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_priority_preempts_with_sigterm_and_the_victim_resumes(service, loop, tmp_path) -> None:
    marker = tmp_path / "stops"
    # A program that "checkpoints" on SIGTERM (appends to a file) and exits 75, like the recipe.
    low_prog = (f"import signal, sys, time\n"
                f"def stop(*_):\n    open({str(marker)!r}, 'a').write('stop\\n'); sys.exit(75)\n"
                f"signal.signal(signal.SIGTERM, stop)\n"
                f"import os\n"
                f"n = open({str(marker)!r}).read().count('stop') if os.path.exists({str(marker)!r}) else 0\n"
                f"time.sleep(0.2 if n else 60)\n")
    low = service.submit(ADMIN, command(PY, "-c", low_prog, cpus=2, name="low"), priority="low")["id"]
    until(loop, lambda: state(service, low) == "RUNNING")
    time.sleep(0.5)  # let it install its handler
    high = service.submit(ADMIN, command(PY, "-c", "import time; time.sleep(0.3)", cpus=2, name="high"),
                          priority="high")["id"]
    until(loop, lambda: state(service, high) == "SUCCEEDED" and state(service, low) == "SUCCEEDED")
    low_shown = service.job(low)
    moves = [(t["from"], t["to"]) for t in low_shown["transitions"]]
    assert ("RUNNING", "PREEMPTED") in moves and ("PREEMPTED", "QUEUED") in moves
    assert [a["exit_code"] for a in low_shown["attempts"]] == [75, 0]
    assert marker.read_text() == "stop\n"
    # The high job started only once the low one had let go of the cores.
    high_start = service.job(high)["attempts"][0]["started_s"]
    assert high_start >= low_shown["attempts"][0]["ended_s"] - 0.05
    # Aging counts the low job's time in the queue, not the time it ran before the preemption.
    from sqlalchemy import select

    from llmos.control._db import read
    from llmos.control._loop import _waited
    from llmos.control._schema import jobs

    with read(service.engine) as conn:
        waited = _waited(conn, [conn.execute(select(jobs).where(jobs.c.id == low)).one()])[low]
    first, second = low_shown["attempts"]
    assert waited == pytest.approx(first["started_s"] - low_shown["submit_s"] + second["started_s"] - first["ended_s"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cancel_sends_sigterm_then_sigkill_after_the_grace_period(service, loop) -> None:
    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
                "time.sleep(60)")
    job_id = service.submit(ADMIN, command(PY, "-c", stubborn))["id"]
    until(loop, lambda: "up" in service.read_log(job_id, "attempt-1/output.log")["text"]
          if service.log_files(job_id) else False)
    service.cancel(ADMIN, job_id)
    cancelled_at = time.monotonic()
    until(loop, lambda: not holds(service, job_id))
    assert time.monotonic() - cancelled_at >= 0.9  # it ignored SIGTERM for the whole grace period (1 s)
    assert state(service, job_id) == "CANCELLED"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_restarted_loop_adopts_survivors_and_retries_the_dead(engine, inventory, config, service, tmp_path) -> None:
    first = ControlLoop(engine, inventory, config, log=lambda _m: None)
    slow = service.submit(ADMIN, command(PY, "-c", "import time; time.sleep(1.5)", name="survivor"))["id"]
    doomed = service.submit(ADMIN, command(PY, "-c", "import time; time.sleep(60)", name="doomed"))["id"]
    until(first, lambda: state(service, slow) == "RUNNING" and state(service, doomed) == "RUNNING")
    # The daemon "dies" (this loop is dropped unreaped) and one job's processes die with it.
    LocalExecutor().kill((attempt_dir(doomed, 1) / "pid.json").read_text())
    second = ControlLoop(engine, inventory, config, log=lambda _m: None)
    second.recover()
    try:
        until(second, lambda: state(service, slow) == "SUCCEEDED" and state(service, doomed) == "RUNNING"
              and service.job(doomed)["attempt"] == 2)
        assert service.job(slow)["attempt"] == 1  # adopted, not restarted
        assert service.job(doomed)["attempts"][0]["outcome"] == "failed"
    finally:
        second.stop_all("test over", timeout_s=5)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_waiting_project_below_its_share_accrues_owed_share_for_the_policy(service, loop) -> None:
    hog = service.submit(ADMIN, command(PY, "-c", "import time; time.sleep(60)", cpus=2), project="a")["id"]
    until(loop, lambda: state(service, hog) == "RUNNING")
    waiting = service.submit(ADMIN, command(PY, "-c", "pass"), project="b")["id"]
    for _ in range(3):
        loop.tick()
        time.sleep(0.05)
    # Project b waits with nothing while a holds both cores: the daemon, like the simulator, keeps
    # what b is owed and hands it to the policy in the next snapshot.
    assert state(service, waiting) in ("QUEUED", "STARTING", "RUNNING", "SUCCEEDED")
    assert loop.owed.get("b", 0.0) > 0.0 and loop.owed.get("a", 0.0) <= 0.0
