"""The control plane's store fixtures (SQLite and PostgreSQL), for the pipeline driver's tests."""

from tests.unit.control.conftest import config, db_url, engine, inventory, service  # noqa: F401
