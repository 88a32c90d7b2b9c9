"""The state store on SQLite and PostgreSQL: one transition function, unique completions,
append-only history, and concurrent writers that never see "database is locked"."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from tests.unit.control.conftest import command

from llmos.control._auth import Caller
from llmos.control._db import read, write
from llmos.control._errors import Conflict, NotFound
from llmos.control._schema import audit, completions, jobs, transitions
from llmos.control._states import JobState
from llmos.control._transition import create_job, transition

ADMIN = Caller("admin", "admin", "test")
VALUES = {"name": "j", "kind": "command", "owner": "ann", "project": "ann", "priority": 1, "spec": "{}", "workers": 1,
          "cpus": 1.0, "memory_gb": 0.0, "gpus": 0, "max_retries": 0}


def test_every_transition_is_checked_recorded_and_completes_once(engine) -> None:
    with write(engine) as conn:
        job_id = create_job(conn, VALUES, "submitted", now_s=1.0)
    with write(engine) as conn:
        transition(conn, job_id, JobState.STARTING, "placed", now_s=2.0, attempt=1, holds=True)
        transition(conn, job_id, JobState.RUNNING, "spawned", now_s=3.0)
    with pytest.raises(Conflict, match="cannot become STARTING"), write(engine) as conn:
        transition(conn, job_id, JobState.STARTING, "again", now_s=4.0)  # RUNNING -> STARTING is not a move
    with pytest.raises(Conflict), write(engine) as conn:
        transition(conn, job_id, JobState.FAILED, "x", now_s=4.0, expect=[JobState.QUEUED])
    with write(engine) as conn:
        transition(conn, job_id, JobState.SUCCEEDED, "exit 0", now_s=5.0, exit_code=0)
    with pytest.raises(Conflict), write(engine) as conn:
        transition(conn, job_id, JobState.FAILED, "late", now_s=6.0)
    with pytest.raises(NotFound), write(engine) as conn:
        transition(conn, 999, JobState.FAILED, "x", now_s=6.0)
    with read(engine) as conn:
        history = conn.execute(select(transitions.c.from_state, transitions.c.to_state, transitions.c.at_s)
                               .where(transitions.c.job_id == job_id).order_by(transitions.c.id)).all()
        done = conn.execute(select(completions)).all()
    assert [(h.from_state, h.to_state, h.at_s) for h in history] == [
        (None, "QUEUED", 1.0), ("QUEUED", "STARTING", 2.0), ("STARTING", "RUNNING", 3.0),
        ("RUNNING", "SUCCEEDED", 5.0)]
    assert [(d.job_id, d.state, d.exit_code) for d in done] == [(job_id, "SUCCEEDED", 0)]
    # The completion record itself cannot be written twice, whatever the code above does.
    with pytest.raises(IntegrityError), write(engine) as conn:
        conn.execute(insert(completions).values(job_id=job_id, state="FAILED", at_s=7.0))


def test_a_stale_writer_loses_the_compare_and_set(engine) -> None:
    with write(engine) as conn:
        job_id = create_job(conn, VALUES, "submitted", now_s=1.0)
    with write(engine) as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(state="CANCELLED"))  # someone else moved it
    with pytest.raises(Conflict), write(engine) as conn:
        transition(conn, job_id, JobState.STARTING, "placed", now_s=2.0, expect=[JobState.QUEUED])


def test_history_and_audit_are_append_only(engine) -> None:
    with write(engine) as conn:
        create_job(conn, VALUES, "submitted", now_s=1.0)
        conn.execute(insert(audit).values(at_s=1.0, actor="a", role="admin", action="submit", target="job 1",
                                          source="x", outcome="ok", detail=""))
    for table in (transitions, audit):
        with pytest.raises(DBAPIError, match="append-only"), write(engine) as conn:
            conn.execute(update(table).values(at_s=0.0))
        with pytest.raises(DBAPIError, match="append-only"), write(engine) as conn:
            conn.execute(delete(table))


def _submit_many(url: str, home: str, worker: int, n: int, out) -> None:
    import os

    os.environ["LLMOS_HOME"] = home
    from llmos.control._config import ControlConfig
    from llmos.control._db import open_db
    from llmos.control._inventory import Inventory
    from llmos.control._service import Service

    service = Service(open_db(url, create=False), Inventory((0, 1), 8.0), ControlConfig())
    ids, errors = [], []
    for i in range(n):
        try:
            ids.append(service.submit(ADMIN, command("true", name=f"w{worker}-{i}"))["id"])
        except Exception as exc:  # reported to the parent, which fails the test with it
            errors.append(repr(exc))
    out.put((ids, errors))


@pytest.mark.timeout(120)
def test_four_processes_submitting_25_each_lose_nothing(db_url: str, engine, llmos_home) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_submit_many, args=(db_url, str(llmos_home), w, 25, out)) for w in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=100) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    ids = [i for got, _ in results for i in got]
    errors = [e for _, errs in results for e in errs]
    assert errors == []
    assert len(ids) == len(set(ids)) == 100
    with read(engine) as conn:
        stored = conn.execute(select(jobs.c.id, jobs.c.name, jobs.c.state)).all()
        audited = conn.execute(select(audit.c.target).where(audit.c.action == "submit")).all()
    assert sorted(r.id for r in stored) == sorted(ids)
    assert {r.name for r in stored} == {f"w{w}-{i}" for w in range(4) for i in range(25)}
    assert {r.state for r in stored} == {"QUEUED"} and len(audited) == 100


def test_sqlite_store_uses_wal_and_a_busy_timeout(tmp_path) -> None:
    from llmos.control._db import open_db

    engine = open_db(f"sqlite:///{tmp_path / 's.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    started = time.monotonic()
    with write(engine) as conn:  # a write transaction begins IMMEDIATE: it holds the write lock at once
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    assert time.monotonic() - started < 5
