"""`kind: sweep` end to end: docs/pipelines.md's sweep example under a real daemon (SQLite and
PostgreSQL) killed with SIGKILL mid-sweep and started again: real trial jobs, the real Optuna study
in the control plane's database, MLflow parent and child runs, the best trial registered; and
`llmos run` in the foreground, where the median pruner stops a trial whose loss lags (a real
SIGTERM: it checkpoints and exits). tiny-bert; the metric is the eval loss, which moves with the
learning rate from the first evaluation (a 12-step tiny model's accuracy is often flat).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration._util import llmos

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
DOC = Path(__file__).parents[2] / "docs" / "pipelines.md"


def docs_example(folder: Path) -> Path:
    """The sweep spec of docs/pipelines.md beside the bundled data, as the doc tells a reader to set it up."""
    import re
    import shutil

    from llmos.data import bundled_dataset_path

    text = DOC.read_text().split("<!-- sweep-example:", 1)[1]
    for csv in bundled_dataset_path().glob("*.csv"):
        shutil.copy(csv, folder)
    (folder / "sweep.yaml").write_text(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))  # type: ignore[union-attr]
    return folder / "sweep.yaml"


def sweep_spec(data: tuple[Path, Path], **fields: object) -> dict:
    train, test = data
    return {"kind": "sweep", "name": "tiny",
            "base": {"model": {"name": "tiny-bert", "max_length": 32},
                     "data": {"train": str(train), "eval": str(test)},
                     "train": {"max_steps": 12, "eval_every_steps": 4, "batch_size": 8, "num_threads": 1,
                               "log_every_steps": 4},
                     "checkpoint": {"every_steps": None},
                     "tracking": {"system_metrics": False}},
            "params": {"train.lr": {"log_range": [1.0e-6, 0.3]}},
            "metric": "loss", "direction": "minimize", "trials": 4, "max_parallel": 2, "sampler": "random",
            "pruner": {"kind": "median", "startup_trials": 2}, **fields}


def wait_for(check: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture
def daemon(llmos_home: Path) -> Iterator[Callable[..., int]]:
    """`llmos up ARGS`; returns the daemon's pid. Always brought down (and killed) afterwards."""
    pids: list[int] = []

    def up(*args: str) -> int:
        llmos("up", "--port", "0", "--cpus", "2", *args, timeout_s=120)
        pids.append(json.loads((llmos_home / "control" / "daemon.json").read_text())["pid"])
        return pids[-1]

    try:
        yield up
    finally:
        if (llmos_home / "control" / "daemon.json").exists():
            llmos("down", "--timeout-s", "60", check=False, timeout_s=90)
        import psutil

        for pid in pids:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
        from llmos.executor import LocalExecutor

        for pid_file in (llmos_home / "control" / "jobs").glob("*/attempt-*/pid.json"):
            LocalExecutor().kill(pid_file.read_text())


@pytest.fixture(params=["sqlite", "postgresql"])
def db_args(request: pytest.FixtureRequest) -> Iterator[tuple[str, ...]]:
    if request.param == "sqlite":
        yield ()
        return
    from tests.unit.control._pg import pg_database

    with pg_database() as url:
        yield ("--db", url)


def test_the_docs_sweep_under_the_daemon_resumes_after_a_kill(daemon, db_args, llmos_home: Path,
                                                             tmp_path: Path) -> None:
    from llmos.control import Client

    pid = daemon(*db_args)
    spec = docs_example(tmp_path)
    assert "kind sweep" in " ".join(llmos("spec", "validate", str(spec)).stdout.split())
    sweep_id = int(llmos("submit", str(spec)).stdout.split("submitted job ")[1].split()[0])

    def trials() -> list[dict]:
        with Client.local() as c:
            return c.job(sweep_id)["sweep"]["trials"]

    wait_for(lambda: any(t["state"] in ("complete", "pruned") for t in trials()), 240, "a finished trial")
    os.kill(pid, signal.SIGKILL)  # for real: no shutdown, trials left running, the study mid-way
    wait_for(lambda: not _alive(pid), 30, "the daemon to die")
    daemon(*db_args)

    def ended() -> dict | None:
        with Client.local() as c:
            job = c.job(sweep_id)
        return job if job["state"] in ("SUCCEEDED", "FAILED") else None

    job = wait_for(ended, 300, "the sweep to end")
    assert job["state"] == "SUCCEEDED", job["reason"]  # type: ignore[index]
    sweep = job["sweep"]  # type: ignore[index]
    numbers = [t["number"] for t in sweep["trials"]]
    assert numbers == [0, 1, 2, 3]  # each trial started once, across the restart
    assert len({t["job_id"] for t in sweep["trials"]}) == 4
    assert {t["state"] for t in sweep["trials"]} <= {"complete", "pruned"}
    best = sweep["result"]["best"]
    assert best["value"] == min(t["value"] for t in sweep["trials"] if t["state"] == "complete")
    assert sweep["result"]["registered"]["alias"] == "best"
    assert f"registered intents version {sweep['result']['registered']['version']}" in job["reason"]  # type: ignore[index]
    shown = llmos("jobs", "show", str(sweep_id)).stdout
    assert "train.lr" in shown and "complete" in shown and "loss" in shown

    # The study is in the control plane's database, next to llmos's own tables.
    from sqlalchemy import text

    from llmos.control._db import open_db

    with open_db(db_args[1] if db_args else None).connect() as conn:
        names = [r[0] for r in conn.execute(text("SELECT study_name FROM studies"))]
        assert names == [sweep["study"]]
        assert conn.execute(text("SELECT count(*) FROM trials")).scalar() == 4

    # MLflow: the parent run with the plots, each trial a child run under it.
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{llmos_home / 'mlflow.db'}")
    parent = client.get_run(sweep["result"]["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.metrics["best_loss"] == pytest.approx(best["value"])
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert plots == {"plots/optimization_history.png", "plots/param_importances.png"}
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.data.tags["llmos.trial"] for r in children) == ["0", "1", "2", "3"]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_llmos_run_prunes_a_lagging_trial_in_the_foreground(sentiment_csv, tmp_path: Path) -> None:
    # One at a time, in the grid's seeded order: lr 1e-9 first (it barely moves the loss: the first
    # trial always runs to the end), then lr 5, whose loss blows up and so lags the median of the
    # trials before it at its first evaluation; then 2e-9, level with the first, left to finish.
    spec = sweep_spec(sentiment_csv, sampler="grid", max_parallel=1, trials=3, seed=3,
                      params={"train.lr": {"choices": [5.0, 1.0e-9, 2.0e-9]}},
                      pruner={"kind": "median", "startup_trials": 1}, output=str(tmp_path / "sweep"))
    spec["base"]["tracking"] = {"enabled": False}
    # long enough that the stop lands while it still trains: on a quiet AVX2 host 60 steps took
    # under the foreground's poll and the SIGTERM came after the last one
    spec["base"]["train"]["max_steps"] = 160
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = json.loads(llmos("run", str(path), "--json", timeout_s=400).stdout)
    states = [(t["params"]["train.lr"], t["state"]) for t in result["trials"]]
    assert states == [(1e-9, "complete"), (5.0, "pruned"), (2e-9, "complete")], result["trials"]
    assert result["best"]["number"] == 0 and result["counts"] == {"complete": 2, "pruned": 1}
    pruned = next(t["number"] for t in result["trials"] if t["state"] == "pruned")
    run_dir = tmp_path / "sweep" / f"t{pruned}"
    evals = [json.loads(line)["step"] for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert max(evals) < 160  # stopped before its last step
    assert json.loads((run_dir / "run.json").read_text())["status"] == "preempted"  # a clean stop
