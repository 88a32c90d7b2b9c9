"""The audit log is tamper-evident (issue 14.6): someone who can write the state database (SQLite or
PostgreSQL), and drops the append-only triggers first, deletes, alters, reorders or inserts rows
directly; `verify` names the first bad row each time. Concurrent writers never fork the chain.
End to end: a real daemon audits refused calls (401 without a valid token too), `llmos audit`
filters them, and `llmos audit verify` catches a row deleted from state.db by hand."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from sqlalchemy import insert, select, text

from llmos.control._audit import Entry, append, check_chain, key, seal_legacy, verify
from llmos.control._audit_head import head_file, read_head
from llmos.control._db import open_db, read, write
from llmos.control._schema import audit
from tests.unit.control._pg import pg_database

SECRET = bytes(range(32))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    if request.param == "sqlite":
        engine = open_db(f"sqlite:///{tmp_path / 'state.db'}")
        yield engine
        engine.dispose()
        return
    with pg_database() as url:
        engine = open_db(url)
        yield engine
        engine.dispose()


def entry(i: int, actor: str = "ann") -> Entry:
    return Entry(actor=actor, role="developer", action="submit", target=f"job {i}", source="127.0.0.1:5",
                 project="nlp", status=201, detail=f"call {i}")


def fill(engine, n: int) -> None:
    for i in range(1, n + 1):
        with write(engine) as conn:
            append(conn, entry(i), secret=SECRET, now_s=1000.0 + i)


def tamper(engine, *statements: str) -> None:
    """Run SQL as an attacker with the database's password would, the append-only triggers dropped first."""
    drop = (["DROP TRIGGER IF EXISTS audit_no_update", "DROP TRIGGER IF EXISTS audit_no_delete"]
            if engine.dialect.name == "sqlite" else ["DROP TRIGGER IF EXISTS audit_append_only ON audit"])
    with write(engine) as conn:
        for sql in (*drop, *statements):
            conn.execute(text(sql))


def verdict(engine):
    with read(engine) as conn:
        return verify(conn, secret=SECRET, batch=2)  # batches of 2: the paging is walked too


def test_an_untouched_chain_verifies_and_the_triggers_guard_it(engine) -> None:
    fill(engine, 5)
    assert verdict(engine).to_dict() == {"ok": True, "rows": 5, "chained": 5, "first_bad": None, "problem": ""}
    with pytest.raises(Exception, match="append-only"), write(engine) as conn:
        conn.execute(text("DELETE FROM audit WHERE id = 3"))
    with read(engine) as conn:  # another key (a plain recomputation) does not verify it
        assert verify(conn, secret=bytes(32)).first_bad == 1


SWAP = ["UPDATE audit SET id = 100 WHERE id = 2", "UPDATE audit SET id = 2 WHERE id = 3",
        "UPDATE audit SET id = 3 WHERE id = 100"]
# (what was done, the statements, the first bad row, words of the problem)
TAMPERS = {
    "deleted": (["DELETE FROM audit WHERE id = 3"], 4, "row 3 is missing"),
    "deleted, later ids renumbered": (["DELETE FROM audit WHERE id = 3",
                                       "UPDATE audit SET id = id - 1 WHERE id > 3"], 3, "do not match"),
    "last two deleted, then one forged": (["DELETE FROM audit WHERE id >= 4",
                                           "INSERT INTO audit (id, at_s, actor, role, project, action, target, "
                                           "source, outcome, status, detail, prev_digest, digest) SELECT 4, at_s, "
                                           "'mallory', role, project, action, target, source, outcome, status, "
                                           "detail, digest, digest FROM audit WHERE id = 3"], 4, "do not match"),
    "altered": (["UPDATE audit SET actor = 'mallory' WHERE id = 3"], 3, "do not match"),
    "altered, plain sha256 recomputed": ([], 3, "do not match"),  # filled in by the test
    "reordered": (SWAP, 2, "do not match"),
    "inserted at the end": (["INSERT INTO audit (id, at_s, actor, role, project, action, target, source, outcome, "
                             "status, detail, prev_digest, digest) SELECT 6, at_s, 'mallory', role, project, action, "
                             "target, source, outcome, status, detail, digest, digest FROM audit WHERE id = 5"],
                            6, "do not match"),
    "every digest removed": (["UPDATE audit SET digest = NULL, prev_digest = NULL"], 1, "none of the 5 rows"),
    "one digest removed": (["UPDATE audit SET digest = NULL WHERE id = 4"], 4, "carries no digest"),
}


def test_verify_names_the_first_bad_row(engine) -> None:
    """Each tamper on a fresh log of 5 rows (one database for all: the log is emptied between them)."""
    wrong = {}
    for what, (statements, first_bad, words) in TAMPERS.items():
        tamper(engine, "DELETE FROM audit")
        head_file().unlink(missing_ok=True)  # a fresh log: forget the newest row of the last one
        fill(engine, 5)
        assert verdict(engine).ok
        if what == "altered, plain sha256 recomputed":
            with read(engine) as conn:
                row = conn.execute(select(audit).where(audit.c.id == 3)).one()
            forged = hashlib.sha256((row.prev_digest + "mallory").encode()).hexdigest()
            statements = [f"UPDATE audit SET actor = 'mallory', digest = '{forged}' WHERE id = 3"]
        tamper(engine, *statements)
        found = verdict(engine)
        if found.ok or found.first_bad != first_bad or not found.problem.startswith(f"row {first_bad}:") \
                or words not in found.problem:
            wrong[what] = found
    assert wrong == {}


def test_a_cut_tail_is_caught_by_the_head_kept_outside_the_database(engine) -> None:
    fill(engine, 5)
    head = read_head(engine)
    assert head is not None and head[0] == 5 and head_file().stat().st_mode & 0o777 == 0o600
    tamper(engine, "DELETE FROM audit WHERE id >= 4")  # what remains is a valid chain of 3 rows
    with read(engine) as conn:
        assert verify(conn, secret=SECRET).ok
        cut = verify(conn, secret=SECRET, head=head)
    assert (cut.ok, cut.first_bad) == (False, 4) and "rows 4..5 are missing from the end" in cut.problem
    with write(engine) as conn:  # the daemon appends on: it writes the cut into the chain first
        append(conn, entry(6), secret=SECRET)
    with read(engine) as conn:
        found = verify(conn, secret=SECRET, head=read_head(engine))
        rows = [(r.id, r.action, r.target) for r in conn.execute(select(audit).where(audit.c.id >= 4))]
    assert rows == [(4, "audit.cut", "rows 4..5"), (5, "submit", "job 6")]
    assert (found.ok, found.first_bad) == (False, 4) and "rows 4..5 had been removed" in found.problem


def test_concurrent_writers_never_fork_the_chain(engine) -> None:
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(20):
                with write(engine) as conn:
                    append(conn, entry(i, actor=f"w{w}"), secret=SECRET)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert verdict(engine).to_dict() == {"ok": True, "rows": 80, "chained": 80, "first_bad": None, "problem": ""}


def test_rows_from_before_the_chain_are_sealed_by_the_first_chained_row(engine) -> None:
    with write(engine) as conn:  # as llmos 0.1.0 wrote them: no digest
        for i in (1, 2):
            conn.execute(insert(audit).values(id=i, at_s=float(i), actor="old", role="admin", action="submit",
                                              target=f"job {i}", source="local", outcome="ok", detail=""))
    with read(engine) as conn:
        assert "none of the 2 rows" in verify(conn, secret=SECRET).problem
    with write(engine) as conn:  # what the daemon does at start, once
        assert seal_legacy(conn, secret=SECRET) == 3 and seal_legacy(conn, secret=SECRET) is None
    fill(engine, 2)
    assert verdict(engine).to_dict() == {"ok": True, "rows": 5, "chained": 3, "first_bad": None, "problem": ""}
    with read(engine) as conn:
        assert conn.execute(select(audit.c.action, audit.c.target).where(audit.c.id == 3)).one() == (
            "audit.seal", "rows 1..2")
    tamper(engine, "UPDATE audit SET actor = 'mallory' WHERE id = 1")
    found = verdict(engine)
    assert found.first_bad == 3 and "does not follow" in found.problem


def test_check_chain_is_pure() -> None:
    assert check_chain(SECRET, []).ok
    gap = check_chain(SECRET, [{"id": 2, "digest": None, "prev_digest": None}])
    assert (gap.ok, gap.first_bad, gap.problem) == (False, 2, "row 2: row 1 is missing before it (deleted)")


def test_since_takes_ages_dates_and_epoch_seconds() -> None:
    import time

    from llmos.cli.audit import parse_since
    from llmos.errors import LlmosError

    assert parse_since("30m", 10_000.0) == 8_200.0 and parse_since("2h", 10_000.0) == 2_800.0
    assert parse_since("1700000000", 0.0) == 1_700_000_000.0
    assert parse_since("2026-12-06T04:30", 0.0) == time.mktime((2026, 12, 6, 4, 30, 0, 0, 0, -1))
    with pytest.raises(LlmosError, match="not a time"):
        parse_since("yesterday", 0.0)


def test_the_key_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    made = key(path)
    assert len(made) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert key(path) == made and bytes.fromhex(path.read_text().strip()) == made


# ---- end to end: a real daemon, the real CLI --------------------------------------------------------------


@pytest.fixture
def daemon(llmos_home: Path) -> Iterator[dict]:
    from tests.integration._util import llmos as run  # a process of its own: the daemon outlives it

    run("up", "--port", "0", "--cpus", "2", timeout_s=120)
    info = json.loads((llmos_home / "control" / "daemon.json").read_text())
    try:
        yield info
    finally:
        run("down", "--timeout-s", "30", check=False, timeout_s=60)
        with contextlib.suppress(ProcessLookupError):  # `down` stopped it unless it hung
            os.kill(info["pid"], signal.SIGKILL)


def llmos(*args: str, check: bool = True) -> Result:
    """The CLI in this process (the daemon is a real one in another)."""
    from typer.testing import CliRunner

    from llmos.cli.main import app

    result = CliRunner().invoke(app, list(args))
    assert not check or result.exit_code == 0, (args, result.output)
    return result


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_refused_calls_are_audited_and_a_row_deleted_by_hand_is_caught(daemon: dict, llmos_home: Path) -> None:
    url = daemon["url"]
    assert httpx.get(f"{url}/v1/jobs").status_code == 401
    assert httpx.get(f"{url}/v1/jobs", headers={"Authorization": "Bearer llmos_forged"}).status_code == 401
    root = (llmos_home / "control" / "admin.token").read_text().strip()
    made = httpx.post(f"{url}/v1/tokens", json={"role": "viewer", "name": "vic"},
                      headers={"Authorization": f"Bearer {root}"})
    viewer = made.json()["token"]
    job = {"spec": {"kind": "command", "name": "c", "run": ["true"], "resources": {"cpus": 1}}}
    assert httpx.post(f"{url}/v1/jobs", json=job, headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
    assert httpx.post(f"{url}/v1/jobs", content=b"x" * 2_000_000,
                      headers={"Authorization": f"Bearer {viewer}"}).status_code == 413

    bad = {"spec": {"kind": "command", "name": "c", "run": ["true"], "resources": {"cpus": 2**70}}}
    assert httpx.post(f"{url}/v1/jobs", json=bad, headers={"Authorization": f"Bearer {root}"}).status_code == 422
    assert httpx.get(f"{url}/v1/jobs/77", headers={"Authorization": f"Bearer {root}"}).status_code == 404
    mine = json.loads(llmos("audit", "--json", "--actor", "admin", "--limit", "2").stdout)
    assert [(r["action"], r["target"], r["status"]) for r in mine] == [
        ("GET /v1/jobs/{job_id}", "/v1/jobs/77", 404), ("POST /v1/jobs", "/v1/jobs", 422)]
    refused = json.loads(llmos("audit", "--json", "--actor", "anonymous").stdout)
    assert [(r["action"], r["status"]) for r in refused] == [("GET /v1/jobs", 401), ("GET /v1/jobs", 401)]
    assert "not known" in refused[0]["detail"] and refused[0]["source"].startswith("127.0.0.1:")
    too_big = json.loads(llmos("audit", "--json", "--actor", "vic").stdout)[0]  # refused before its route
    assert (too_big["action"], too_big["role"], too_big["status"]) == ("POST /v1/jobs", "viewer", 413)
    denied = json.loads(llmos("audit", "--json", "--action", "submit", "--since", "10m").stdout)
    assert [(r["actor"], r["role"], r["outcome"], r["status"]) for r in denied] == [("vic", "viewer", "403", 403)]
    assert json.loads(llmos("audit", "--json", "--action", "tokens.*").stdout)[0]["target"] == "viewer token vic"
    assert "intact" in llmos("audit", "verify").stdout

    with sqlite3.connect(llmos_home / "control" / "state.db") as db:  # the attack: by hand, triggers dropped
        db.executescript("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 2;")
    caught = llmos("audit", "verify", check=False)
    assert caught.exit_code == 1, caught.output
    assert "row 3: row 2 is missing before it (deleted)" in " ".join(caught.stdout.split())
