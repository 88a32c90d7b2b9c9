"""The newest audit row appended, kept outside the database: `LLMOS_HOME/control/audit.head`.

Cutting the newest rows off a hash chain leaves a valid, shorter chain; comparing it with the
(id, digest) of the last row appended catches that. The file is written when a transaction that
appended commits (never for one rolled back), beside the chain's key in the control folder that
jobs cannot reach. One entry per database (keyed by its URL without password), the last commit
winning: two commits racing can leave the older of two heads, a weaker but still true anchor.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["read_head", "remember"]

_PENDING = "llmos_audit_head"
_lock = threading.Lock()


def head_file() -> Path:
    from llmos.control._paths import control_dir

    return control_dir() / "audit.head"


def _database(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def remember(conn: Connection, row_id: int, digest: str) -> None:
    """Note (id, digest) in `conn`'s transaction; the file gets it when the transaction commits."""
    from sqlalchemy import event

    conn.info[_PENDING] = (row_id, digest)
    engine = conn.engine
    if not event.contains(engine, "commit", _on_commit):
        event.listen(engine, "commit", _on_commit)
        event.listen(engine, "rollback", _on_rollback)


def _on_commit(conn: Connection) -> None:
    pending = conn.info.pop(_PENDING, None)
    if pending is not None:
        try:
            _write(_database(conn.engine), *pending)
        except OSError as exc:  # the row is committed: never fail the call over its anchor
            logging.getLogger("llmos.control").error("could not write %s: %s", head_file(), exc)


def _on_rollback(conn: Connection) -> None:
    conn.info.pop(_PENDING, None)


def _write(database: str, row_id: int, digest: str) -> None:
    with _lock:
        path = head_file()
        heads = _read(path)
        heads[database] = [row_id, digest]
        tmp = path.with_name(f"{path.name}.{os.getpid()}.new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(heads, f)
        os.replace(tmp, path)


def _read(path: Path) -> dict[str, list]:
    try:
        heads = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return heads if isinstance(heads, dict) else {}


def read_head(engine: Engine) -> tuple[int, str] | None:
    """The (id, digest) of the newest row this LLMOS_HOME saw appended to `engine`'s log, if any."""
    head = _read(head_file()).get(_database(engine))
    return (int(head[0]), str(head[1])) if isinstance(head, list) and len(head) == 2 else None
