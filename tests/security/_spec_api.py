"""The control API in-process over a real SQLite store in the test's LLMOS_HOME: root (admin), ann and
bob (developers, each in a project of their own), vic (viewer). Shared by the paths and secrets tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def api() -> Iterator[Callable[..., Any]]:
    from fastapi.testclient import TestClient

    from llmos.control._app import create_app
    from llmos.control._auth import create_token
    from llmos.control._config import ControlConfig
    from llmos.control._db import default_url, open_db, write
    from llmos.control._inventory import Inventory
    from llmos.control._service import Service

    engine = open_db(default_url())
    service = Service(engine, Inventory(cores=(0, 1), memory_gb=8.0), ControlConfig(port=0))
    with write(engine) as conn:
        tokens = {owner: create_token(conn, name=owner, owner=owner, role=role) for owner, role in
                  (("root", "admin"), ("ann", "developer"), ("bob", "developer"), ("vic", "viewer"))}
    client = TestClient(create_app(service, {"pid": 1}))

    def call(who: str, method: str, path: str, **kw: Any) -> Any:
        return client.request(method, path, headers={"Authorization": f"Bearer {tokens[who]}"}, **kw)

    call.service = service  # type: ignore[attr-defined]
    yield call
    engine.dispose()


def train(**fields: Any) -> dict:
    """A train spec whose every path the test chooses (nothing is read at submit)."""
    data = {"train": "hf:imdb", "label_column": "label", **fields.pop("data", {})}
    return {"spec": {"kind": "train", "name": "t", "data": data, **fields}}


def command(**fields: Any) -> dict:
    return {"spec": {"kind": "command", "name": "c", "run": ["true"], **fields}}
