"""Checking an MLflow tracking server before MLflow talks to it.

MLflow's own client retries an unreachable server with backoff for minutes, and a server that
is not MLflow (a wrong port, a proxy's 404 page) comes back as a stack of HTML. One quick probe of
the API the client is about to use (`experiments/search`, the cheapest read) fails fast with the
fix instead. `/health` alone is not enough: MLflow answers it even for a Host header its security
middleware refuses on every API route.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from llmos.errors import TrackingError

__all__ = ["SERVER_HINT", "check_server"]

SERVER_HINT = ("Point llmos at a running MLflow server: `llmos up --tracking URL` for the daemon's jobs, "
               "LLMOS_TRACKING_URI=URL for commands run by hand (a spec's tracking.uri overrides both); "
               "or unset both for the local SQLite store under LLMOS_HOME. Docs: docs/tracking.md.")
_START_HINT = ("Start it (mlflow server --backend-store-uri postgresql+psycopg://USER@HOST/DB --serve-artifacts "
               "--host 0.0.0.0 --port 5000), or fix the address. ")
_PROBE = "/api/2.0/mlflow/experiments/search?max_results=1"
_PROBE_TIMEOUT_S = 5.0
_BODY_CHARS = 200  # of an unexpected answer, quoted in the error


def check_server(uri: str, timeout_s: float = _PROBE_TIMEOUT_S) -> None:
    """Raise TrackingError unless `uri` answers as an MLflow tracking server (an auth layer's
    401/403 counts as an answer: MLflow's client sends the credentials, this probe does not)."""
    url = uri.rstrip("/") + _PROBE
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        _refused(uri, exc)
        return
    except (OSError, ValueError) as exc:  # refused, no such host, timed out, not a URL
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"cannot reach the MLflow tracking server at {uri} ({reason}).",
                            hint=_START_HINT + SERVER_HINT) from exc
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise TrackingError(f"{uri} answers, but not as an MLflow tracking server: GET {_PROBE} returned "
                            f"{_quote(body)}.", hint="Check the address and port. " + SERVER_HINT)


def _refused(uri: str, exc: urllib.error.HTTPError) -> None:
    body = exc.read(64 * 1024) if exc.fp is not None else b""
    if exc.code == 403 and b"Invalid Host header" in body:
        host = urllib.parse.urlparse(uri).netloc
        raise TrackingError(f"the MLflow server at {uri} refuses the host name {host} (Invalid Host header).",
                            hint=f"Start the server with --allowed-hosts {host} (and --host 0.0.0.0 to listen "
                                 "beyond loopback), or reach it by an address it allows.") from exc
    if exc.code in (401, 403):
        return  # an auth layer in front: MLflow's client will send MLFLOW_TRACKING_USERNAME/TOKEN
    if exc.code >= 500:
        raise TrackingError(f"the MLflow server at {uri} failed (HTTP {exc.code}: {_quote(body)}).",
                            hint="Check the server's log and its backend store (is its database up?). "
                                 + SERVER_HINT) from exc
    raise TrackingError(f"{uri} answers, but not as an MLflow tracking server (HTTP {exc.code} on GET "
                        f"{_PROBE}: {_quote(body)}).",
                        hint="Check the address and port (an `mlflow server --artifacts-only` does not track). "
                             + SERVER_HINT) from exc


def _quote(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    if not text:
        return "an empty body"
    return repr(text[:_BODY_CHARS] + ("..." if len(text) > _BODY_CHARS else ""))
