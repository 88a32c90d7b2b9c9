"""Opening the state store: SQLite (WAL) under LLMOS_HOME, or PostgreSQL with the same code.

Every write runs in a short transaction from `write()`. On SQLite it begins with
`BEGIN IMMEDIATE`: a transaction that reads and then writes would otherwise take the write lock
only at its first write and, if another writer committed meanwhile, fail at once with
"database is locked" instead of waiting its turn (the busy timeout does not apply to that case).
Reads use plain `BEGIN` and, under WAL, never wait for writers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmos.errors import LlmosError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, MetaData

__all__ = ["database_url", "default_url", "migrate", "open_db", "read", "redact", "split_password", "write"]

_BUSY_TIMEOUT_MS = 30_000
_BASELINE = "0001"  # the revision that is llmos 0.1.0's schema (migrations/versions/0001_baseline.py)


def default_url() -> str:
    from llmos.control._paths import control_dir

    return f"sqlite:///{control_dir() / 'state.db'}"


def open_db(url: str | None = None, *, create: bool = True) -> Engine:
    """An engine for `url` (default: SQLite under LLMOS_HOME) with the schema in place."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    url = url or default_url()
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3, not psycopg2
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
                               pool_size=8, max_overflow=24)
        _sqlite_events(engine)
    elif url.startswith("postgresql"):
        from llmos._lazy import require

        require("psycopg")  # names the extra; SQLAlchemy would only say "No module named 'psycopg'"
        engine = create_engine(url, pool_size=8, max_overflow=24, pool_pre_ping=True)
    else:
        raise LlmosError(f"unsupported state database {redact(url)!r}.",
                         hint="Use sqlite:///PATH or postgresql://USER@HOST:PORT/DB (or leave --db out).")
    if create:
        try:
            _create(engine)
        except OperationalError as exc:
            raise LlmosError(f"cannot open the state database {redact(url)}: {exc.orig}",
                             hint="Check the server runs and the URL (user, host, port, db).") from None
    return engine


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """One short write transaction, committed on exit (rolled back on an exception)."""
    with engine.connect().execution_options(llmos_write=True) as conn, conn.begin():
        yield conn


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


def redact(url: str) -> str:
    """The URL without its password, for messages and `llmos status`."""
    head, sep, tail = url.partition("://")
    if not sep or "@" not in tail:
        return url
    cred, _, host = tail.rpartition("@")
    user = cred.split(":", 1)[0]
    return f"{head}://{user}:***@{host}" if ":" in cred else url


def split_password(url: str) -> tuple[str, str | None]:
    """(the URL without its password, the password or None): what may be written to a file, and what may not."""
    from urllib.parse import unquote

    head, sep, tail = url.partition("://")
    cred, at, host = tail.rpartition("@")
    if not sep or not at or ":" not in cred:
        return url, None
    user, _, password = cred.partition(":")
    return f"{head}://{user}@{host}", unquote(password)


def database_url(url: str | None, password_file: str | None = None) -> str | None:
    """The URL to connect with: its own password, else $LLMOS_DB_PASSWORD, else the one in `password_file`,
    which must be readable by its owner only (0600)."""
    if url is None or not url.startswith(("postgresql", "postgres://")):
        return url
    if split_password(url)[1] is not None:
        return url
    password = os.environ.get("LLMOS_DB_PASSWORD")
    if password is None and password_file:
        password = _read_password(Path(password_file).expanduser())
    if not password:
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).set(password=password).render_as_string(hide_password=False)


def _read_password(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise LlmosError(f"cannot read the database password file {path}: {exc.strerror}.",
                         hint="Check the path given to --db-password-file.") from None
    if mode & 0o077:
        raise LlmosError(f"the database password file {path} may be read by others (mode {mode & 0o777:o}).",
                         hint=f"Make it private: chmod 600 {path}")
    return text.strip("\n")


def _sqlite_events(engine: Engine) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # pysqlite must not emit its own BEGIN; `_on_begin` does
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        # FULL: a transition is on disk when its commit returns, even if the machine loses power.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("llmos_write") else "BEGIN")


def _create(engine: Engine) -> None:
    """Bring the schema to the newest revision of `llmos.control.migrations` (Alembic), in one
    write transaction: a new database gets every table, an older one its missing revisions."""
    with write(engine) as conn:
        migrate(conn)


def migrate(conn: Connection, revision: str = "head") -> None:
    from alembic import command
    from sqlalchemy import inspect

    config = _alembic_config(conn)
    present = set(inspect(conn).get_table_names())
    if "jobs" in present and "alembic_version" not in present:  # written before versioned migrations (0.1.0)
        from alembic.script import ScriptDirectory

        baseline = ScriptDirectory.from_config(config).get_revision(_BASELINE).module
        _add_missing_columns(conn, baseline.tables())  # older 0.1.0 databases lack the later token columns
        command.stamp(config, _BASELINE)
    command.upgrade(config, revision)


def _alembic_config(conn: Connection) -> Any:
    from pathlib import Path

    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.attributes["connection"] = conn
    return config


def _add_missing_columns(conn: Connection, metadata: MetaData) -> None:
    """Bring a database made by an older 0.1.0 up to its final schema: columns added then are all nullable."""
    from sqlalchemy import inspect, text

    inspector = inspect(conn)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
