"""Checking an MLflow tracking server before MLflow talks to it.

MLflow's own client retries an unreachable server with backoff for minutes, and a server that
is not MLflow (a wrong port, a proxy's 404 page) comes back as a stack of HTML. One quick probe of
the API the client is about to use (`experiments/search`, the cheapest read) fails fast with the
fix instead. `/health` alone is not enough: MLflow answers it even for a Host header its security
middleware refuses on every API route. The probe sends what MLflow's client would: basic or
bearer credentials from MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN, and the TLS
settings of MLFLOW_TRACKING_SERVER_CERT_PATH, MLFLOW_TRACKING_CLIENT_CERT_PATH and
MLFLOW_TRACKING_INSECURE_TLS; where MLflow authenticates in a way it cannot copy (an auth plugin,
AWS SigV4, ~/.mlflow/credentials) a 401 or 403 is left for MLflow's client to judge.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

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
_CREDENTIALS_HINT = ("Set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (MLflow's basic-auth app) or "
                     "MLFLOW_TRACKING_TOKEN in the environment of every llmos process that reaches the server.")
_TLS_HINT = ("For a server certificate from a private CA set MLFLOW_TRACKING_SERVER_CERT_PATH=CA.pem "
             "(MLFLOW_TRACKING_INSECURE_TLS=true skips the check). ")


def check_server(uri: str, timeout_s: float = _PROBE_TIMEOUT_S) -> None:
    """Raise TrackingError unless `uri` answers as an MLflow tracking server that lets this client in."""
    request = urllib.request.Request(uri.rstrip("/") + _PROBE, headers={"Accept": "application/json",
                                                                         **_auth_header()})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=_tls(uri)) as response:
            body = response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        _refused(uri, exc)
        return
    except (OSError, ValueError) as exc:  # refused, no such host, timed out, TLS, not a URL
        reason = getattr(exc, "reason", exc)
        tls = _TLS_HINT if isinstance(reason, ssl.SSLError) else ""
        raise TrackingError(f"cannot reach the MLflow tracking server at {uri} ({reason}).",
                            hint=tls + _START_HINT + SERVER_HINT) from exc
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise TrackingError(f"{uri} answers, but not as an MLflow tracking server: GET {_PROBE} returned "
                            f"{_quote(body)}.", hint="Check the address and port. " + SERVER_HINT)


def _auth_header() -> dict[str, str]:
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _tls(uri: str) -> ssl.SSLContext | None:
    if not uri.lower().startswith("https:"):
        return None
    context = ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    client_cert = os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH")
    if client_cert:
        context.load_cert_chain(client_cert)
    return context


def _auth_beyond_probe() -> bool:
    """True where MLflow's client authenticates in a way this probe does not copy."""
    return bool(os.environ.get("MLFLOW_TRACKING_AUTH")
                or os.environ.get("MLFLOW_TRACKING_AWS_SIGV4", "").lower() == "true"
                or Path("~/.mlflow/credentials").expanduser().is_file())


def _refused(uri: str, exc: urllib.error.HTTPError) -> None:
    body = exc.read(64 * 1024) if exc.fp is not None else b""
    if exc.code == 403 and b"Invalid Host header" in body:
        host = urllib.parse.urlparse(uri).netloc
        raise TrackingError(f"the MLflow server at {uri} refuses the host name {host} (Invalid Host header).",
                            hint=f"Start the server with --allowed-hosts {host} (and --host 0.0.0.0 to listen "
                                 "beyond loopback), or reach it by an address it allows.") from exc
    if exc.code in (401, 403) and _auth_beyond_probe():
        return  # MLflow's client brings credentials this probe could not send
    if exc.code == 401:
        sent = _auth_header().get("Authorization", "")
        said = ("asks for credentials" if not sent else
                "refuses the credentials in MLFLOW_TRACKING_USERNAME/PASSWORD" if sent.startswith("Basic") else
                "refuses the token in MLFLOW_TRACKING_TOKEN")
        raise TrackingError(f"the MLflow server at {uri} {said} (HTTP 401).", hint=_CREDENTIALS_HINT) from exc
    if exc.code == 403:
        raise TrackingError(f"the MLflow server at {uri} refuses this client (HTTP 403: {_quote(body)}).",
                            hint="Check the permissions of the user in MLFLOW_TRACKING_USERNAME, or the access "
                                 "rules of a proxy in front of the server. " + SERVER_HINT) from exc
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
