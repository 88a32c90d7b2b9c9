"""A throwaway PostgreSQL database on the local server (127.0.0.1:5432, user postgres), or a skip."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


@contextmanager
def pg_database() -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it afterwards."""
    import sqlalchemy as sa

    admin = sa.create_engine(f"{SERVER}/test", isolation_level="AUTOCOMMIT")
    name = f"llmos_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432 ({exc.orig}); the PostgreSQL tests need it")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
