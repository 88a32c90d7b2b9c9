"""Fixtures of the control-plane unit tests: a state store on SQLite or PostgreSQL, a service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.control._pg import pg_database

from llmos.control._config import ControlConfig
from llmos.control._inventory import Inventory


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    with pg_database() as url:
        yield url


@pytest.fixture
def engine(db_url: str):
    from llmos.control._db import open_db

    engine = open_db(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def inventory() -> Inventory:
    return Inventory(cores=(0, 1), memory_gb=8.0)


@pytest.fixture
def config() -> ControlConfig:
    return ControlConfig(port=0, interval_s=0.05, grace_s=1.0, retry_base_s=0.0, max_retries=1)


@pytest.fixture
def service(engine, inventory: Inventory, config: ControlConfig):
    from llmos.control._service import Service

    return Service(engine, inventory, config)


def command(*argv: str, cpus: int = 1, name: str = "c") -> dict:
    return {"kind": "command", "name": name, "run": list(argv), "resources": {"cpus": cpus}}
