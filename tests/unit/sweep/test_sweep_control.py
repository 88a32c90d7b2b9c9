"""The control plane's side of a sweep on a real SQLite state database: the sweep row (RUNNING at
once, holding nothing), trial jobs with the sweep's owner, project and priority, a pruned trial's
job cancelled with its reason, and a sweep whose rounds keep failing failed with the cause."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select, update

from llmos.control._db import open_db, read, write
from llmos.control._schema import jobs
from llmos.control._sweeps import JobTrials, SweepDriver, create_sweep, sweep_view
from llmos.spec import parse_job, trial_job


def test_a_sweep_its_trial_jobs_and_a_sweep_that_cannot_go_on(tmp_path: Path) -> None:
    engine = open_db(f"sqlite:///{tmp_path / 'state.db'}")
    job = parse_job({"kind": "sweep", "name": "s", "output": str(tmp_path / "runs"),
                     "base": {"data": {"train": "/d/a.csv"}, "tracking": {"enabled": False}},
                     "params": {"train.lr": {"log_range": [1e-5, 1e-3]}}})
    with write(engine) as conn:
        sweep_id = create_sweep(conn, job, {"owner": "ann", "project": "nlp", "priority": 2, "max_retries": 1},
                                "submitted by ann", 100.0)  # type: ignore[arg-type]
    with read(engine) as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == sweep_id)).one()
    assert (row.state, row.kind, row.workers, row.holds) == ("RUNNING", "sweep", 0, False)

    trials = JobTrials(engine, row, 101.0)
    trials.start(0, trial_job(job, 0, {"train.lr": 1e-4}, output=str(tmp_path / "runs" / "t0")))  # type: ignore[arg-type]
    with read(engine) as conn:
        trial = conn.execute(select(jobs).where(jobs.c.name == "s-t0")).one()
        view = sweep_view(conn, sweep_id)
    assert (trial.owner, trial.project, trial.priority, trial.max_retries) == ("ann", "nlp", 2, 1)
    assert trial.state == "QUEUED"
    assert view["trials"] == [{"number": 0, "job_id": trial.id, "state": "running", "job_state": "QUEUED",  # type: ignore[index]
                               "params": {"train.lr": 1e-4}, "value": None, "best": False}]
    trials.stop(0, "pruned by the sweep's median pruner")
    assert trials.runs()[0].state == "pruned"
    with read(engine) as conn:
        trial = conn.execute(select(jobs).where(jobs.c.id == trial.id)).one()
    assert trial.state == "CANCELLED" and trial.reason.startswith("pruned by the sweep's median pruner")

    with write(engine) as conn:  # a spec the driver can no longer read: every round fails
        conn.execute(update(jobs).where(jobs.c.id == sweep_id).values(spec=json.dumps({"kind": "sweep"})))
    logged: list[str] = []
    driver = SweepDriver(engine, log=logged.append)
    for i in range(30):
        driver.rounds(now=200.0 + 2 * i)
    with read(engine) as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == sweep_id)).one()
    assert row.state == "FAILED" and row.reason.startswith("sweep rounds failed 30 times in a row: sweep ")
    assert driver.rounds(now=300.0) == 0  # ended: no more rounds
    assert len(logged) == 31 and "round failed" in logged[0]
    engine.dispose()
