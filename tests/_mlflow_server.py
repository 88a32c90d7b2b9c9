"""A real `mlflow server` for the tests: PostgreSQL backend store, proxied artifacts, a free port.

The session fixture `mlflow_server` creates a fresh database on the machine's PostgreSQL
(127.0.0.1:5432, user postgres, trust auth), starts the venv's `mlflow server` on it with
`--serve-artifacts --artifacts-destination TMP` and one worker, waits until it answers, and at the
end stops it and drops the database. Clients get only its URL: artifacts travel over HTTP
(`mlflow-artifacts:`), exactly as from a worker on another node. Without PostgreSQL the tests
that use it are skipped, saying why.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["MlflowServer", "mlflow_server"]

PG_SERVER = "postgres@127.0.0.1:5432"
_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class MlflowServer:
    url: str  # what clients get: http://127.0.0.1:PORT
    port: int  # it listens on every interface: nodes of the test Ray cluster reach it at the head's address
    artifacts: Path  # the server's --artifacts-destination; clients never read it
    database: str  # the backend store URI
    started_in_s: float  # from launch to the first answered API call
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"postgresql://{PG_SERVER}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def _create_database() -> str:
    import psycopg

    name = f"llmos_mlflow_{uuid.uuid4().hex[:12]}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_SERVER} ({exc}); the MLflow server tests need it")
    return name


def _answers(url: str) -> bool:
    # The API itself, not /health: the app answers /health before its store is ready.
    try:
        with urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=2):
            return True
    except (OSError, urllib.error.HTTPError):
        return False


def _wait_ready(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not _answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            what = f"exited with {proc.returncode}" if proc.poll() is not None else "did not answer in time"
            raise RuntimeError(f"mlflow server {what}; its log ends:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    # The CLI runs uvicorn as a child: signal the group the fixture started, nothing else.
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    folder = tmp_path_factory.mktemp("mlflow-server")
    database = _create_database()
    store = f"postgresql+psycopg://{PG_SERVER}/{database}"  # psycopg 3 is the driver installed
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "server.log"
    argv = [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", store,
            "--serve-artifacts", "--artifacts-destination", str(folder / "artifacts"),
            "--host", "0.0.0.0", "--port", str(port), "--workers", "1"]
    # No job-execution runner (MLflow 3's background job consumer, on by default): the tests need
    # none, and it doubles the start on a busy 2-core machine (median 19.4 s vs 8.3 s: BENCHMARKS.md).
    # No usage telemetry either: the test machine is offline.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=folder, env=env,
                                start_new_session=True)
    try:
        _wait_ready(proc, url, log)
        yield MlflowServer(url, port, folder / "artifacts", store, time.monotonic() - start, log)
    finally:
        _stop(proc)
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
