"""The control plane end to end: a real daemon (`llmos up`), real jobs, real signals.

The daemon is told this host has 2 cores (`--cpus 2`) so that the scenarios are the same on
any machine: which job waits, which one is preempted.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration._util import llmos, tiny_bert_job, weights, write_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
PY = sys.executable


def command_job(folder: Path, name: str, argv: list[str], cpus: int = 1) -> Path:
    return write_job(folder / name, json.dumps({"kind": "command", "name": name, "run": argv,
                                                "resources": {"cpus": cpus}}))


def daemon_info(home: Path) -> dict:
    return json.loads((home / "control" / "daemon.json").read_text())


def wait_for(check: Callable[[], bool], timeout_s: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def client():
    from llmos.control import Client

    return Client.local()


def states(c) -> dict[int, str]:
    return {j["id"]: j["state"] for j in c.jobs(limit=1000)}


@pytest.fixture
def plane(llmos_home: Path) -> Iterator[Callable[..., dict]]:
    """Start the control plane with `llmos up ARGS`; always stopped (and its jobs killed) after."""
    started: list[int] = []

    def up(*args: str) -> dict:
        llmos("up", "--port", "0", "--cpus", "2", *args, timeout_s=120)
        info = daemon_info(llmos_home)
        started.append(info["pid"])
        return info

    try:
        yield up
    finally:
        if (llmos_home / "control" / "daemon.json").exists():
            llmos("down", "--timeout-s", "60", check=False, timeout_s=90)
        import psutil

        for pid in started:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
        for pid_file in (llmos_home / "control" / "jobs").glob("*/attempt-*/pid.json"):
            from llmos.executor import LocalExecutor

            LocalExecutor().kill(pid_file.read_text())


def _submit_25(home: str, folder: str, worker: int, out) -> None:
    os.environ["LLMOS_HOME"] = home
    from llmos.control import Client

    ids, errors = [], []
    with Client.local() as c:
        for i in range(25):
            try:
                ids.append(c.submit({"kind": "command", "name": f"w{worker}-{i}", "run": ["true"]})["id"])
            except Exception as exc:  # reported to the test
                errors.append(repr(exc))
    out.put((ids, errors))


def test_cli_lifecycle_roles_and_concurrent_submissions(plane, tmp_path: Path, llmos_home: Path) -> None:
    info = plane()
    assert info["url"].startswith("http://127.0.0.1:")
    token_file = llmos_home / "control" / "admin.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert "running" in llmos("status").stdout
    again = llmos("up", "--port", "0")
    assert "already running" in again.stdout

    probe = "import os; print('hello from', sorted(os.sched_getaffinity(0)))"
    hello = command_job(tmp_path, "hello", [PY, "-c", probe])
    out = llmos("submit", str(hello)).stdout
    job_id = int(out.split("submitted job ")[1].split()[0])
    logs = llmos("logs", str(job_id), "-f", timeout_s=60).stdout
    assert "hello from [0]" in logs
    shown = llmos("jobs", "show", str(job_id)).stdout
    assert "SUCCEEDED" in shown and "QUEUED" in shown and "RUNNING" in shown
    listed = llmos("jobs").stdout
    assert "hello" in listed and "SUCCEEDED" in listed
    finished = llmos("cancel", str(job_id), check=False)
    assert finished.returncode == 2 and "already finished" in finished.stderr
    assert "no job 999" in llmos("jobs", "show", "999", check=False).stderr

    made = llmos("tokens", "create", "--role", "viewer", "--name", "vic").stdout
    viewer = next(line for line in made.splitlines() if line.startswith("llmos_"))
    as_viewer = subprocess.run([PY, "-m", "llmos.cli.main", "submit", str(hello)], capture_output=True, text=True,
                               env={**os.environ, "LLMOS_TOKEN": viewer}, timeout=60)
    assert as_viewer.returncode == 2 and "developer role" in as_viewer.stderr

    # 4 processes x 25 submissions at once: nothing lost, no "database is locked".
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_submit_25, args=(str(llmos_home), str(tmp_path), w, queue)) for w in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    ids = [i for got, _ in results for i in got]
    assert [e for _, errs in results for e in errs] == []
    assert len(set(ids)) == 100
    with client() as c:
        wait_for(lambda: all(states(c).get(i) == "SUCCEEDED" for i in ids), what="100 jobs to finish")
    log = (llmos_home / "control" / "daemon.log").read_text()
    assert "database is locked" not in log and "round failed" not in log

    llmos("down", timeout_s=90)
    assert "not running" in llmos("status", check=False).stdout


def test_state_in_postgresql(plane, tmp_path: Path) -> None:
    from tests.unit.control._pg import pg_database

    with pg_database() as url:
        info = plane("--db", url)
        assert info["db"].startswith("postgresql")
        job = command_job(tmp_path, "pg", ["true"])
        with client() as c:
            job_id = c.submit_file(job)["id"]
            wait_for(lambda: c.job(job_id)["state"] == "SUCCEEDED", what="the job to finish")
        llmos("down", timeout_s=90)


CHECKPOINTING = """
import json, os, sys, time
state, steps = sys.argv[1], int(sys.argv[2])
done = json.load(open(state))["step"] if os.path.exists(state) else 0
open(state + ".starts", "a").write(f"{done}\\n")
for step in range(done, steps):
    time.sleep(0.1)
    json.dump({"step": step + 1}, open(state + ".tmp", "w"))
    os.replace(state + ".tmp", state)
open(state + ".done", "a").write("done\\n")
"""


def test_daemon_sigkill_then_up_adopts_survivors_and_retries_the_dead(plane, tmp_path: Path,
                                                                       llmos_home: Path) -> None:
    script = tmp_path / "count.py"
    script.write_text(CHECKPOINTING)
    info = plane("--retry-base-s", "0.2")
    with client() as c:
        ids = [c.submit_file(command_job(tmp_path, f"n{i}", [PY, str(script), str(tmp_path / f"n{i}.json"), "30"]))
               ["id"] for i in range(4)]

        def progressed() -> bool:
            running = [i for i, s in states(c).items() if s == "RUNNING"]
            return len(running) == 2 and all(_step(tmp_path, ids.index(i)) >= 5 for i in running)

        wait_for(progressed, what="two jobs to make progress")
        running = [i for i, s in states(c).items() if s == "RUNNING"]
    os.kill(info["pid"], signal.SIGKILL)  # the daemon dies with two jobs running and two queued
    survivor, dead = running
    pid_of = {i: json.loads((llmos_home / "control" / "jobs" / str(i) / "attempt-1" / "pid.json").read_text())
              for i in running}
    from llmos.executor import LocalExecutor, Proc

    LocalExecutor().kill(Proc(**pid_of[dead]).to_json())  # ... and one of the running jobs dies too
    time.sleep(0.5)

    plane("--retry-base-s", "0.2")
    with client() as c:
        wait_for(lambda: all(states(c)[i] == "SUCCEEDED" for i in ids), what="every job to finish")
        shown = {i: c.job(i) for i in ids}
    assert [a["pid"] for a in shown[survivor]["attempts"]] == [pid_of[survivor]["pid"]]  # adopted
    assert [a["outcome"] for a in shown[dead]["attempts"]] == ["failed", "ok"]  # retried ...
    starts = (tmp_path / f"n{ids.index(dead)}.json.starts").read_text().split()
    assert starts[0] == "0" and int(starts[1]) >= 5  # ... from its checkpoint
    for i in ids:  # every job completed exactly once
        assert (tmp_path / f"n{ids.index(i)}.json.done").read_text() == "done\n"
        assert sum(t["to"] == "SUCCEEDED" for t in shown[i]["transitions"]) == 1
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{llmos_home / 'control' / 'state.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT job_id) FROM completions")).one() == (4, 4)
    engine.dispose()


def _step(folder: Path, n: int) -> int:
    try:
        return json.loads((folder / f"n{n}.json").read_text())["step"]
    except (OSError, ValueError):
        return 0


@pytest.mark.timeout(480)  # two training processes beside a daemon: under load they take minutes
def test_preempted_training_resumes_to_the_weights_of_an_undisturbed_run(
        plane, tmp_path: Path, sentiment_csv: tuple[Path, Path], undisturbed_run: Path) -> None:
    # 100 steps: the preemption (checkpoint at step 10, then a high-priority submission) lands mid-run.
    job = tiny_bert_job(tmp_path / "spec", sentiment_csv, tmp_path / "preempted", name="low")
    plane("--grace-s", "120")
    with client() as c:
        low = c.submit_file(job, priority="low")["id"]
        wait_for(lambda: (tmp_path / "preempted" / "checkpoints" / "step-00000010").is_dir(),
                 what="the low-priority job to checkpoint")
        high_job = command_job(tmp_path, "urgent", [PY, "-c", "import time; time.sleep(1)"], cpus=2)
        high = c.submit_file(high_job, priority="high")["id"]
        wait_for(lambda: states(c)[low] == "SUCCEEDED" and states(c)[high] == "SUCCEEDED", timeout_s=400,
                 what="both jobs to finish")
        low_shown, high_shown = c.job(low), c.job(high)
        logs = _all_logs(c, low)
    moves = [(t["from"], t["to"]) for t in low_shown["transitions"]]
    assert ("RUNNING", "PREEMPTED") in moves and ("PREEMPTED", "QUEUED") in moves
    assert [a["exit_code"] for a in low_shown["attempts"]] == [75, 0]
    assert high_shown["attempts"][0]["started_s"] >= low_shown["attempts"][0]["ended_s"] - 0.05
    assert "resumed from step-" in logs
    straight, resumed = weights(undisturbed_run), weights(tmp_path / "preempted")
    import torch

    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=0, msg=name)


def _all_logs(c, job_id: int) -> str:
    return "".join(c.read_log(job_id, f["name"])["text"] for f in c.log_files(job_id))


@pytest.mark.timeout(360)  # two replica start-ups (a roll) and two jobs beside a daemon
def test_a_deployment_preempts_low_work_holds_one_core_serves_and_rolls(plane, tmp_path: Path,
                                                                        llmos_home: Path) -> None:
    import httpx

    from llmos.deploy._process import free_port
    from tests.integration.test_deploy_serve import register_tiny

    assert register_tiny(llmos_home, ["negative", "positive"]) == "1"
    plane()
    marker = tmp_path / "ran"
    # Sleeps on its first run (until preempted); succeeds at once when it runs again.
    prog = f"import os, sys, time\nif os.path.exists({str(marker)!r}): sys.exit(0)\n" \
           f"open({str(marker)!r}, 'w').close(); time.sleep(600)\n"
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/classify"
    with client() as c:
        low = c.submit_file(command_job(tmp_path, "low", [PY, "-c", prog], cpus=2), priority="low")["id"]
        wait_for(lambda: c.job(low)["state"] == "RUNNING" and marker.exists(), timeout_s=60, what="the low job")
        # The machine is full: the replica preempts the low job for a core instead of sharing one.
        out = llmos("deploy", "tiny@prod", "--port", str(port), "batching.max_wait_ms=1", timeout_s=120).stdout
        assert "deployed tiny" in out
        wait_for(lambda: c.deployments()[0]["ready"] == 1, timeout_s=150, what="the replica to be ready")
        answer = httpx.post(url, json={"input": "hello"}, timeout=30)
        assert answer.status_code == 200, (answer.text, c.deployments())
        shown, deployment = c.job(low), c.deployments()[0]
        moves = [(t["from"], t["to"]) for t in shown["transitions"]]
        assert moves.count(("RUNNING", "PREEMPTED")) == 1 and ("PREEMPTED", "QUEUED") in moves, moves
        assert shown["state"] == "QUEUED", shown  # 2 cores asked, 1 left beside the replica
        replica_cores = deployment["replicas"][0]["cores"]
        assert len(replica_cores) == 1 and deployment["waiting"] == 0, deployment
        assert any("r1 waits for 1 free core(s)" in e for e in deployment["events"]), deployment["events"]

        # The replica holds one of the two cores: a 1-core job runs beside it, the 2-core job waits.
        narrow = c.submit_file(command_job(tmp_path, "narrow", [PY, "-c", "import os; print(os.sched_getaffinity(0))"]))
        wait_for(lambda: c.job(narrow["id"])["state"] == "SUCCEEDED", what="the 1-core job")
        assert c.job(low)["state"] == "QUEUED", (c.job(low), c.deployments())
        narrow_cores = c.job(narrow["id"])["attempts"][0]["placement"]["workers"][0]["cores"]
        assert set(narrow_cores).isdisjoint(replica_cores), (narrow_cores, c.deployments())
        assert "tiny" in llmos("status").stdout and "SERVING" in llmos("top", "--once").stdout

        # The alias moves: deploying the same reference again rolls to the new version.
        assert register_tiny(llmos_home, ["neg", "pos"]) == "2"
        assert "rolling tiny" in llmos("deploy", "tiny@prod", "--port", str(port), "batching.max_wait_ms=1").stdout
        # Right after the roll the target is version 2 while version 1's replica still serves alone:
        # wait for the roll to finish and for every replica to be version 2's.
        wait_for(lambda: (d := c.deployments()[0])["rollout"] == "done" and d["ready"] == 1
                 and [r["version"].rsplit("/", 1)[-1] for r in d["replicas"]] == ["2"],
                 timeout_s=150, what="the roll to version 2")
        label = httpx.post(url, json={"input": "hello"}, timeout=30).json()["data"][0]["label"]
        assert label in ("neg", "pos"), label  # version 2's labels; version 1 says negative/positive
        llmos("undeploy", "tiny")
        wait_for(lambda: c.job(low)["state"] == "SUCCEEDED", timeout_s=90, what="the low job once the replica left")
        shown = c.job(low)
        audit = [a["action"] for a in c.audit()]
    assert [a["exit_code"] for a in shown["attempts"]] == [-15, 0]
    assert len(shown["attempts"][0]["placement"]["workers"][0]["cores"]) == 2, shown["attempts"]
    # preempted once, by the first replica: the roll's replica took the core the 1-core job had left
    assert [(t["from"], t["to"]) for t in shown["transitions"]].count(("RUNNING", "PREEMPTED")) == 1
    assert {"deploy", "deploy.roll", "undeploy"} <= set(audit)
