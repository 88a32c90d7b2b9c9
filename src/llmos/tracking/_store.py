"""One way to reach the MLflow store, and one translation of its failures into llmos errors.

MLflow is imported inside functions: `llmos --help` must not pay for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING

from llmos import paths
from llmos.errors import LlmosError, TrackingError
from llmos.tracking._seed import seed_sqlite_store
from llmos.tracking._server import check_server

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["client", "is_local_store", "is_server", "mlflow_errors", "quiet_downloads", "resolve_uri"]

_HINT = ("Check LLMOS_TRACKING_URI (`llmos up --tracking` for the daemon's jobs, or tracking.uri in the "
         "spec): the http(s) address of a running MLflow server, or a SQLite path such as "
         "sqlite:////abs/path/mlflow.db.")
# Stores MLflow writes itself, with no server between: artifacts then go to a folder on this machine.
_DIRECT_SCHEMES = frozenset({"", "file", "sqlite", "postgresql", "postgres", "mysql", "mssql"})
# MLflow's INFO lines and printed links that would land in the middle of a command's own output.
_QUIET_LOGGERS = ("mlflow.store.db.utils", "alembic", "mlflow.store.model_registry.abstract_store")


def resolve_uri(uri: str | None) -> str:
    return paths.tracking_uri(uri)


def is_server(uri: str) -> bool:
    return urllib.parse.urlparse(uri).scheme in ("http", "https")


def is_local_store(uri: str) -> bool:
    """True when MLflow would keep artifacts on this machine's disk (no server decides)."""
    scheme = urllib.parse.urlparse(uri).scheme.split("+")[0]  # postgresql+psycopg
    return scheme in _DIRECT_SCHEMES or len(scheme) == 1  # one letter: a Windows drive


def client(uri: str | None = None) -> MlflowClient:
    """An MlflowClient on the resolved tracking URI (also the registry URI), checked reachable."""
    uri = resolve_uri(uri)
    if is_server(uri):
        check_server(uri)
    else:
        seed_sqlite_store(uri)  # a new SQLite store: a copy of an empty one, not MLflow's migrations
    # A new SQLite store announces its migrations, a registration its wait for READY, at INFO level.
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Ending a run on a server prints "View run ... at URL" on stdout; llmos prints the run itself.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    with mlflow_errors(uri):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextlib.contextmanager
def mlflow_errors(uri: str, what: str = "the tracking store") -> Iterator[None]:
    """Turn failures to reach or write the store into TrackingError; llmos errors pass through."""
    try:
        yield
    except LlmosError:
        raise
    except ImportError as exc:
        raise TrackingError(f"{what} at {uri} needs a missing package ({exc}).",
                            hint=f"pip install {exc.name or 'the database driver'}; " + _HINT) from exc
    except Exception as exc:
        raise TrackingError(f"{what} at {uri} failed: {_short(exc)}", hint=_HINT) from exc


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:400] if text else type(exc).__name__


@contextlib.contextmanager
def quiet_downloads() -> Iterator[None]:
    """No MLflow download progress bars inside: for one small file, or between a command's own
    progress lines, they are noise."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
