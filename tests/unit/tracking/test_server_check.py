"""check_server against a real HTTP server on a free port that answers as each kind of server would:
MLflow (JSON), MLflow behind basic auth or a token, MLflow refusing the Host header, a failing server,
and not MLflow at all. The real `mlflow server` runs in tests/integration/test_tracking_server.py."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos.errors import TrackingError
from llmos.tracking._server import check_server
from llmos.tracking._store import is_local_store, is_server

MLFLOW = (200, b'{"experiments": [{"experiment_id": "0", "name": "Default"}]}')
ANSWERS: dict[str, tuple[int, bytes]] = {
    "mlflow": MLFLOW,
    "empty-mlflow": (200, b"{}"),
    "host": (403, b"Invalid Host header - possible DNS rebinding attack detected"),
    "forbidden": (403, b"Forbidden by policy"),
    "down-db": (503, b"could not connect to server: Connection refused"),
    "html": (200, b"<html><body>It works!</body></html>"),
    "missing": (404, b"<html>Not Found</html>"),
}
# What the auth routes let in: MLflow's basic-auth app, and a bearer-token proxy.
LET_IN = {"basic": "Basic " + base64.b64encode(b"ann:s3cret").decode(), "token": "Bearer t0k"}
CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
               "MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_AWS_SIGV4")


class _Canned(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        kind, _, path = self.path.lstrip("/").partition("/")
        assert path == "api/2.0/mlflow/experiments/search?max_results=1"
        if kind in LET_IN:
            ok = self.headers.get("Authorization") == LET_IN[kind]
            status, body = MLFLOW if ok else (401, b"You are not authenticated.")
        else:
            status, body = ANSWERS[kind]
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.mlflow/credentials


@pytest.mark.parametrize("kind", ["mlflow", "empty-mlflow"])
def test_an_mlflow_server_passes(base: str, kind: str) -> None:
    check_server(f"{base}/{kind}/")


@pytest.mark.parametrize(("kind", "says", "fix"), [
    ("host", "refuses the host name 127.0.0.1", "--allowed-hosts 127.0.0.1"),
    ("forbidden", "refuses this client (HTTP 403: 'Forbidden by policy')", "access rules"),
    ("down-db", "failed (HTTP 503: 'could not connect", "backend store"),
    ("html", "answers, but not as an MLflow tracking server", "LLMOS_TRACKING_URI"),
    ("missing", "not as an MLflow tracking server (HTTP 404", "--tracking"),
    ("basic", "asks for credentials (HTTP 401)", "MLFLOW_TRACKING_USERNAME"),
])
def test_anything_else_is_one_error_with_the_fix(base: str, kind: str, says: str, fix: str) -> None:
    with pytest.raises(TrackingError) as err:
        check_server(f"{base}/{kind}")
    assert says in err.value.message and fix in (err.value.hint or "")


def test_the_probe_sends_mlflows_credentials(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(TrackingError, match="refuses the credentials in MLFLOW_TRACKING_USERNAME/PASSWORD"):
        check_server(f"{base}/basic")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    check_server(f"{base}/basic")

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0k")
    check_server(f"{base}/token")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "old")
    with pytest.raises(TrackingError, match="refuses the token in MLFLOW_TRACKING_TOKEN"):
        check_server(f"{base}/token")
    # an auth plugin signs MLflow's own requests: the probe leaves the verdict to MLflow's client
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "my_plugin")
    check_server(f"{base}/token")


def test_nothing_listening_fails_fast() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TrackingError, match="cannot reach the MLflow tracking server") as err:
        check_server(f"http://127.0.0.1:{port}", timeout_s=2)
    assert "mlflow server --backend-store-uri" in (err.value.hint or "")


def test_a_certificate_it_cannot_check_names_the_tls_settings(base: str) -> None:
    # a plain-HTTP port spoken to over TLS: the handshake fails, as with an untrusted certificate
    with pytest.raises(TrackingError, match="cannot reach") as err:
        check_server(base.replace("http:", "https:") + "/mlflow", timeout_s=2)
    assert "MLFLOW_TRACKING_SERVER_CERT_PATH" in (err.value.hint or "")


def test_which_stores_keep_artifacts_on_this_machine() -> None:
    for uri in ("sqlite:////tmp/m.db", "/tmp/mlruns", "file:///tmp/mlruns", "postgresql+psycopg://u@h/db",
                "mysql://u@h/db"):
        assert is_local_store(uri) and not is_server(uri), uri
    for uri in ("http://mlflow:5000", "https://mlflow.example.com", "mlflow-artifacts:/1/abc/artifacts", "s3://b/k"):
        assert not is_local_store(uri), uri
    assert is_server("http://mlflow:5000") and not is_server("mlflow-artifacts:/1")
