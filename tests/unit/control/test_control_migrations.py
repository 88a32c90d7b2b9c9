"""Versioned migrations of the state database: a database written by the previous release (0.1.0,
before migrations) is upgraded in place with nothing lost; a new one is created by the migrations;
the schema the code uses and the one the migrations build never disagree."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text, update

from llmos.control import ControlConfig
from llmos.control._db import migrate, open_db, read, write
from llmos.control._inventory import Inventory
from llmos.control._schema import jobs, metadata, tokens, transitions

DUMP = Path(__file__).parent / "data" / "state-0.1.0.sql"
# The newest revision shipped: every upgrade below must end there.
HEAD = max(p.name[:4] for p in (Path(migrate.__code__.co_filename).parent / "migrations" / "versions").glob("0*.py"))


def _head(engine) -> str:
    with read(engine) as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def test_a_database_of_the_previous_release_is_upgraded_with_nothing_lost(tmp_path: Path) -> None:
    from llmos.control._service import Service

    path = tmp_path / "state.db"
    with sqlite3.connect(path) as con:
        con.executescript(DUMP.read_text())
    engine = open_db(f"sqlite:///{path}")
    assert _head(engine) == HEAD
    service = Service(engine, Inventory(cores=(0, 1), memory_gb=8.0), ControlConfig(port=0))
    job = service.job(1)
    assert job["state"] == "SUCCEEDED" and [t["to"] for t in job["transitions"]] == [
        "QUEUED", "STARTING", "RUNNING", "SUCCEEDED"]
    assert job["attempts"][0]["pid"] == 4242 and service.job(2)["state"] == "QUEUED"
    with read(engine) as conn:
        assert [r.prefix for r in conn.execute(select(tokens.c.prefix).order_by(tokens.c.id))] == [
            "llmos_AAAAAA", "llmos_BBBBBB"]
    with pytest.raises(Exception, match="append-only"), write(engine) as conn:  # the history is still guarded
        conn.execute(update(transitions).values(reason="rewritten"))
    open_db(f"sqlite:///{path}")  # opening it again changes nothing
    assert _head(engine) == HEAD


def test_an_older_0_1_0_database_gets_the_columns_added_later(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as con:
        con.executescript(DUMP.read_text())
        con.executescript("CREATE TABLE tokens_old AS SELECT id, name, owner, role, digest, created_s FROM tokens;"
                          "DROP TABLE tokens; ALTER TABLE tokens_old RENAME TO tokens;")
    engine = open_db(f"sqlite:///{path}")
    with read(engine) as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("tokens")}
        assert {"prefix", "last_used_s", "revoked_s"} <= columns
        assert conn.execute(select(jobs.c.name).where(jobs.c.id == 2)).scalar_one() == "sentiment"


def test_the_migrations_build_exactly_the_schema_the_code_uses(db_url: str) -> None:
    """A column or table added to `_schema.py` without a revision in migrations/versions fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = open_db(db_url)
    with read(engine) as conn:
        drift = compare_metadata(MigrationContext.configure(conn), metadata)
    assert drift == [], f"the schema differs from the migrations: {drift}; add a revision"
    assert _head(engine) == HEAD


def test_a_new_database_has_every_table_and_the_triggers(tmp_path: Path) -> None:
    engine = open_db(f"sqlite:///{tmp_path / 'new.db'}")
    with read(engine) as conn:
        assert set(metadata.tables) <= set(inspect(conn).get_table_names())
        triggers = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))}
    assert {"transitions_no_update", "audit_no_delete", "completions_no_update"} <= triggers
    with write(engine) as conn:
        migrate(conn)  # idempotent
    assert _head(engine) == HEAD
