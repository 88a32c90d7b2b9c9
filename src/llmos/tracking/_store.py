"""One way to reach the MLflow store, and one translation of its failures into llmos errors.

MLflow is imported inside functions: `llmos --help` must not pay for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING

from llmos import paths
from llmos.errors import LlmosError, TrackingError

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["client", "is_local_store", "mlflow_errors", "quiet_downloads", "resolve_uri"]

_HINT = ("Check LLMOS_TRACKING_URI (or tracking.uri in the spec): a SQLite path such as "
         "sqlite:////abs/path/mlflow.db, or the http(s) address of a running MLflow server.")
_PING_TIMEOUT_S = 5.0


def resolve_uri(uri: str | None) -> str:
    return paths.tracking_uri(uri)


def is_local_store(uri: str) -> bool:
    """True when MLflow would keep artifacts on this machine's disk (no server decides)."""
    scheme = urllib.parse.urlparse(uri).scheme
    return scheme in ("", "file", "sqlite") or len(scheme) == 1  # one letter: a Windows drive


def _ping(uri: str) -> None:
    # MLflow retries an unreachable server with backoff for minutes; one quick probe fails fast.
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=_PING_TIMEOUT_S):
            pass
    except urllib.error.HTTPError:
        pass  # it answered: a proxy or an auth layer may refuse /health, the server is up
    except (OSError, ValueError) as exc:
        raise TrackingError(f"cannot reach the MLflow server at {uri} ({exc}).", hint=_HINT) from exc


def client(uri: str | None = None) -> MlflowClient:
    """An MlflowClient on the resolved tracking URI (also the registry URI), checked reachable."""
    uri = resolve_uri(uri)
    if urllib.parse.urlparse(uri).scheme in ("http", "https"):
        _ping(uri)
    # A new SQLite store announces its migrations at INFO level, into the user's output.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
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
