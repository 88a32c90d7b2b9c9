"""A new SQLite tracking store starts as a copy of an empty one, instead of MLflow's migrations.

MLflow makes a new SQLite store by creating its tables and then running every schema migration
since its first release, one by one: ~1.5 s of one core for each new `LLMOS_HOME` (a first
`llmos quickstart`, every home a team's scripts or tests make). The result is the same file each
time for one MLflow version, so llmos makes it once, keeps it in its cache folder
(`$LLMOS_CACHE_DIR`, else `$XDG_CACHE_HOME/llmos`, else `~/.cache/llmos`), and copies it (~5 ms)
where a store is new.

The kept copy holds the schema, its migration revision and MLflow's default workspace row, but no
experiment: MLflow creates its Default experiment when it first opens a store that lacks one, so
the Default experiment's artifact folder is the new store's own, as if MLflow had made the file.
Anything unexpected (no cache folder, a read-only home, a store another process made meanwhile)
leaves the store to MLflow as before: seeding is only ever a shortcut.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import urllib.parse
from pathlib import Path

__all__ = ["seed_sqlite_store"]

_log = logging.getLogger(__name__)


def seed_sqlite_store(uri: str) -> None:
    """Where `uri` is `sqlite:///PATH` and PATH does not exist yet, make it a copy of an empty store."""
    path = _sqlite_path(uri)
    if path is None or os.path.lexists(path) or not path.parent.is_dir():
        return
    try:
        template = _empty_store()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600 from the start
        try:
            with os.fdopen(fd, "wb") as out, template.open("rb") as src:
                shutil.copyfileobj(src, out)
            os.link(tmp, path)  # fails if the store appeared meanwhile: that one is kept
        finally:
            os.unlink(tmp)
    except FileExistsError:
        pass
    except Exception as exc:  # only a shortcut: the store is left to MLflow, which makes it as before
        _log.debug("new tracking store %s not seeded: %s", path, exc)


def _sqlite_path(uri: str) -> Path | None:
    """PATH of a plain `sqlite:///PATH` URI (absolute, no query); None for anything else."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "sqlite" or parsed.netloc or parsed.query or not parsed.path.startswith("//"):
        return None
    return Path(parsed.path[1:])


def _cache_dir() -> Path:
    if os.environ.get("LLMOS_CACHE_DIR"):
        return Path(os.environ["LLMOS_CACHE_DIR"]).expanduser()
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "llmos"


def _empty_store() -> Path:
    """The cached empty store for the installed MLflow, made (atomically) on first need."""
    import mlflow

    cache = _cache_dir()
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    if template.is_file():
        return template
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        db = Path(work) / "empty.db"
        _migrate(db, artifacts=Path(work) / "artifacts")
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("DELETE FROM experiments")  # MLflow remakes Default, pointing into the new store
        os.replace(db, template)  # whole or not at all: several processes may make it at once
    return template


def _migrate(db: Path, artifacts: Path) -> None:
    """Let MLflow make a store at `db`: its tables, every migration, its default rows."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for name in ("mlflow.store.db.utils", "alembic"):  # it announces each step at INFO level
        logging.getLogger(name).setLevel(logging.WARNING)
    store = SqlAlchemyStore(f"sqlite:///{db}", str(artifacts))
    store.engine.dispose()
