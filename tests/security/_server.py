"""A control plane served over real HTTP from a thread: the app `llmos up` serves, on a free port,
over a SQLite state store in the test's LLMOS_HOME, with an admin token (and no scheduling loop)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Plane:
    url: str
    service: Any
    tokens: dict[str, str]  # owner -> token: root (admin), ann (developer), vic (viewer)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@contextmanager
def control_plane(**config: Any) -> Iterator[Plane]:
    import uvicorn

    from llmos.control._app import create_app
    from llmos.control._auth import create_token
    from llmos.control._config import ControlConfig
    from llmos.control._db import default_url, open_db, write
    from llmos.control._inventory import Inventory
    from llmos.control._service import Service

    engine = open_db(default_url())
    service = Service(engine, Inventory(cores=(0, 1), memory_gb=8.0), ControlConfig(port=0, **config))
    with write(engine) as conn:
        tokens = {owner: create_token(conn, name=owner, owner=owner, role=role)
                  for owner, role in (("root", "admin"), ("ann", "developer"), ("vic", "viewer"))}
    server = uvicorn.Server(uvicorn.Config(create_app(service, {"pid": 0}), host="127.0.0.1", port=0,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the control API did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Plane(f"http://127.0.0.1:{port}", service, tokens)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
