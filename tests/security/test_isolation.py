"""Jobs cannot reach the control plane (issue 14.1), tried as the issue's attacker would, on a real
daemon: a command job that reads the admin token, opens state.db to drop the audit trigger and
delete rows, reads the daemon's files through /proc, or reads another project's folders, fails at
every step; its environment holds none of the daemon's secrets; it still writes its own folders.
Without isolation the daemon says so and makes admin tokens only."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.integration._util import llmos
from tests.integration.test_control_plane import client, plane, wait_for  # noqa: F401  (plane: fixture)

pytestmark = [pytest.mark.slow,  # real daemons, jobs, a training run and a replica
              pytest.mark.skipif(os.geteuid() != 0, reason="the users isolation needs a root daemon")]

ATTACK = r"""
import json, os, sqlite3, sys
home, daemon, other = os.environ["LLMOS_HOME"], sys.argv[1], sys.argv[2]
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "DONE"
    except Exception as exc:
        out[name] = type(exc).__name__
def database():
    db = sqlite3.connect(f"file:{home}/control/state.db?mode=rw", uri=True)
    db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    db.execute("DELETE FROM audit")
    db.commit()
attempt("read admin token", lambda: open(f"{home}/control/admin.token").read())
attempt("drop trigger, delete audit", database)
attempt("read daemon config", lambda: open(f"{home}/control/daemon-config.json").read())
attempt("read through /proc/PID/root", lambda: open(f"/proc/{daemon}/root{home}/control/admin.token").read())
attempt("read daemon environ", lambda: open(f"/proc/{daemon}/environ").read())
attempt("read other project", lambda: open(f"{home}/projects/alpha/secret.txt").read())
attempt("read other job's log", lambda: open(other).read())
attempt("list projects", lambda: os.listdir(f"{home}/projects"))
attempt("write own folder", lambda: open(os.path.join(os.environ["HOME"], "mine.txt"), "w").write("x"))
attempt("write attempt folder", lambda: open("worker.txt", "w").write("x"))
out["uid"] = os.getuid()
out["secrets in env"] = sorted(k for k in os.environ if k in ("SERVICE_API_TOKEN", "PGPASSWORD", "LLMOS_DB"))
print("RESULT " + json.dumps(out), flush=True)
"""


def _run(c, project: str, argv: list[str]) -> dict:
    job = c.submit({"kind": "command", "name": f"{project}-job", "run": argv}, project=project, max_retries=0)
    wait_for(lambda: c.job(job["id"])["state"] in ("SUCCEEDED", "FAILED"), 180, f"job {job['id']}")
    log = c.read_log(job["id"], "attempt-1/output.log")["text"]
    assert c.job(job["id"])["state"] == "SUCCEEDED", log
    return {"id": job["id"], "log": log}


def test_a_job_cannot_reach_the_control_plane_or_another_project(plane, llmos_home: Path,  # noqa: F811
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOS_ISOLATION", "users")
    monkeypatch.setenv("SERVICE_API_TOKEN", "canary-token")  # the daemon's environment: never a job's
    monkeypatch.setenv("PGPASSWORD", "canary-password")
    info = plane()
    assert info["isolation"] == "users"
    c = client()
    secret = "alpha-only-3b9c"
    alpha = _run(c, "alpha", [sys.executable, "-c",
                              f"import os; open(os.environ['HOME'] + '/secret.txt', 'w').write('{secret}'); "
                              "print(os.getuid())"])
    other_log = llmos_home / "control" / "jobs" / str(alpha["id"]) / "attempt-1" / "output.log"
    beta = _run(c, "beta", [sys.executable, "-c", ATTACK, str(info["pid"]), str(other_log)])
    result = json.loads(beta["log"].split("RESULT ", 1)[1])
    refused = {k: v for k, v in result.items() if k not in ("uid", "secrets in env", "write own folder",
                                                            "write attempt folder")}
    assert all(v != "DONE" for v in refused.values()), result
    assert result["write own folder"] == result["write attempt folder"] == "DONE", result
    assert result["secrets in env"] == [], result
    assert result["uid"] != 0 and str(result["uid"]) != alpha["log"].strip()  # one OS user per project

    # The real state is untouched: the trigger is there and the audit rows too; the files are private.
    db = sqlite3.connect(llmos_home / "control" / "state.db")
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'audit_no_delete'").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM audit").fetchone()[0] > 0
    assert (llmos_home / "projects" / "alpha" / "secret.txt").read_text() == secret
    assert (llmos_home / "projects" / "alpha").stat().st_mode & 0o077 == 0


def test_without_isolation_only_admin_tokens_are_made(plane, llmos_home: Path,  # noqa: F811
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOS_ISOLATION", "none")  # as on a machine with neither root nor user namespaces
    plane()
    log = (llmos_home / "control" / "daemon.log").read_text()
    assert "WARNING: jobs cannot be isolated" in log
    refused = llmos("tokens", "create", "--role", "developer", "--name", "dev", check=False)
    assert refused.returncode != 0 and "makes no developer tokens" in refused.stderr + refused.stdout
    assert "isolation: trusted" in refused.stderr + refused.stdout
    assert llmos("tokens", "create", "--role", "admin", "--name", "ops").returncode == 0
    status = llmos("status")
    assert "isolation none" in status.stdout and "WARNING" in status.stdout


def test_an_isolated_training_job_does_its_work(plane, llmos_home: Path, sentiment_csv,  # noqa: F811
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `users` a training job still reads its project's data, writes its run folder and
    tracks into the shared MLflow store (as its own user, in the llmos-jobs group)."""
    import shutil

    monkeypatch.setenv("LLMOS_ISOLATION", "users")
    plane()
    data = llmos_home / "projects" / "alpha" / "data"
    data.mkdir(parents=True)
    train, test = (Path(shutil.copy(p, data)) for p in sentiment_csv)
    c = client()
    job = c.submit({"kind": "train", "name": "iso", "model": {"name": "tiny-bert", "max_length": 32},
                    "data": {"train": str(train), "eval": str(test)},
                    "train": {"epochs": 1, "batch_size": 16, "lr": 0.005, "num_threads": 1, "log_every_steps": 5},
                    "tracking": {"enabled": True}}, project="alpha", max_retries=0)
    wait_for(lambda: c.job(job["id"])["state"] in ("SUCCEEDED", "FAILED"), 300, "the training job")
    shown = c.job(job["id"])
    assert shown["state"] == "SUCCEEDED", c.read_log(job["id"], "attempt-1/output.log")["text"][-3000:]
    run_dir = Path(shown["run_dir"])
    assert (run_dir / "model" / "model.safetensors").is_file()
    assert run_dir.stat().st_uid != 0 and run_dir.stat().st_mode & 0o077 == 0  # the project's, and its alone
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(f"sqlite:///{llmos_home / 'mlflow.db'}").search_runs(
        [e.experiment_id for e in MlflowClient(f"sqlite:///{llmos_home / 'mlflow.db'}").search_experiments()])
    assert any(r.data.metrics for r in runs)


SANDBOXED = r"""
import json, os, subprocess, sys
home, pid = sys.argv[1], sys.argv[2]
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "DONE"
    except Exception as exc:
        out[name] = type(exc).__name__
attempt("read admin token", lambda: open(f"{home}/control/admin.token").read())
attempt("through /proc/PID/cwd", lambda: open(f"/proc/{pid}/cwd/admin.token").read())
attempt("through /proc/PID/root", lambda: open(f"/proc/{pid}/root{home}/control/admin.token").read())
attempt("other project", lambda: os.listdir(f"{home}/projects/alpha"))
lifted = subprocess.run(["unshare", "-Urm", "sh", "-c", f"umount {home}/control; cat {home}/control/admin.token"],
                        capture_output=True, text=True)
out["lift the tmpfs"] = "DONE" if "llmos_" in lifted.stdout else "refused"
attempt("write own project", lambda: open(f"{home}/projects/beta/x", "w").write("x"))
out["uid"] = os.getuid()
print("RESULT " + json.dumps(out), flush=True)
"""


def test_the_sandbox_of_a_daemon_that_is_not_root(tmp_path_factory: pytest.TempPathFactory,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`sandbox` as an unprivileged daemon would run it: the shim started as `nobody` (the test
    machine's Python lives under /root, so the test lends it a view with /root/.pyenv in it)."""
    import shutil
    import subprocess
    import tempfile

    from llmos.executor._jobuser import attempt_sandbox

    nobody = 65534
    home = Path(tempfile.mkdtemp(prefix="llmos-sandbox-"))  # outside pytest's 0700 root: nobody's home
    try:
        monkeypatch.setenv("LLMOS_HOME", str(home))
        attempt = home / "control" / "jobs" / "1" / "attempt-1"
        attempt.mkdir(parents=True)
        (home / "control" / "admin.token").write_text("llmos_secret\n")
        (home / "projects" / "alpha").mkdir(parents=True)
        (home / "runs").mkdir()
        plan = attempt_sandbox("sandbox", "beta", attempt, None)
        subprocess.run(["chown", "-R", f"{nobody}:{nobody}", str(home)], check=True)
        # A process of the daemon's user standing in control/: the job must not go through its /proc entry.
        holder = subprocess.Popen(["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups",
                                   "sleep", "60"], cwd=home / "control")
        shim = Path(__import__("llmos.executor._shim", fromlist=["x"]).__file__)
        lend = ("set -e; mkdir -p /tmp/.llmos-pyenv-$$; mount --bind /root/.pyenv /tmp/.llmos-pyenv-$$; "
                "mount -t tmpfs -o mode=0755 tmpfs /root; mkdir /root/.pyenv; "
                "mount --move /tmp/.llmos-pyenv-$$ /root/.pyenv; exec \"$@\"")
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", lend, "sh", "setpriv", f"--reuid={nobody}",
                f"--regid={nobody}", "--clear-groups", sys.executable, str(shim), str(attempt), "", plan.to_json(),
                "--", sys.executable, "-c", SANDBOXED, str(home), str(holder.pid)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=attempt)
        holder.kill()
        assert done.returncode == 0, done.stdout + done.stderr
        result = json.loads(done.stdout.split("RESULT ", 1)[1])
        assert result["uid"] == nobody and result["write own project"] == "DONE", result
        assert all(v != "DONE" for k, v in result.items() if k not in ("uid", "write own project")), result
    finally:
        shutil.rmtree(home, ignore_errors=True)
        for leftover in Path("/tmp").glob(".llmos-pyenv-*"):
            leftover.rmdir()


def test_a_serve_replica_runs_isolated_as_its_project(plane, llmos_home: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                      ) -> None:
    import httpx
    import psutil

    from llmos.deploy._process import free_port
    from tests.integration.test_deploy_serve import register_tiny

    monkeypatch.setenv("LLMOS_ISOLATION", "users")
    register_tiny(llmos_home, ["negative", "positive"])
    plane()
    port = free_port()
    assert "deployed tiny" in llmos("deploy", "tiny@prod", "--port", str(port), timeout_s=120).stdout
    c = client()
    wait_for(lambda: c.deployments()[0]["ready"] == 1, 180, "the replica to be ready")
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/classify", json={"input": "hello"}, timeout=30)
    assert answer.status_code == 200, answer.text
    replicas = [p for p in psutil.process_iter(["cmdline", "uids"])
                if (p.info["cmdline"] or [])[1:3] == ["-m", "llmos.serve"] and str(llmos_home) in p.info["cmdline"][-1]]
    assert replicas and all(p.info["uids"].real != 0 for p in replicas), [(p.pid, p.info) for p in replicas]
    environ = replicas[0].environ()
    assert "LLMOS_TOKEN" not in environ and environ["USER"].startswith("llmos-")


def test_links_left_in_a_run_folder_never_turn_the_daemons_writes(llmos_home: Path, sentiment_csv) -> None:
    """A job owns its run folder; the daemon writes the job file there at each launch. A link a job
    of the project left at that name (or a second name of another file, where the kernel allows
    hard links to others' files) is removed first: the file it points at stays as it was."""
    from llmos.control._isolation import prepare_home
    from llmos.executor import LocalExecutor, parse_spec
    from llmos.executor._jobuser import ensure_user

    prepare_home(llmos_home, "users")
    uid, gid, _ = ensure_user("alpha")
    victim, other = llmos_home / "victim.txt", llmos_home / "other.txt"
    victim.write_text("precious\n")
    other.write_text("precious too\n")
    run = llmos_home / "runs" / "t-1"
    run.mkdir()
    (run / "job.json").symlink_to(victim)
    os.link(other, run / "run.json")  # as root: what protected_hardlinks=0 would let a job do
    for path in (run, run / "run.json"):
        os.lchown(path, uid, gid)
    train, test = sentiment_csv
    job = parse_spec({"kind": "train", "name": "t", "output": str(run), "model": {"name": "tiny-bert"},
                      "data": {"train": str(train), "eval": str(test)}, "train": {"epochs": 1}})
    executor = LocalExecutor("users")
    handle = executor.launch(1, 1, job, {"workers": [{"cores": [0], "gpus": []}], "project": "alpha"})
    executor.kill(handle)
    assert victim.read_text() == "precious\n" and other.read_text() == "precious too\n"
    assert not (run / "job.json").is_symlink() and (run / "job.json").stat().st_uid == uid
    assert (run / "run.json").stat().st_nlink == 1
