"""llmos against a real team tracking server: `mlflow server` on PostgreSQL with proxied artifacts.

The clients (the real CLI in subprocesses) get only `LLMOS_TRACKING_URI=http://...` and homes of
their own: every param, metric, model file and registry call goes over HTTP, as from a worker on
another node. One training (module fixture) feeds every test; the server is the session's
(tests/_mlflow_server.py). An unreachable or foreign server is one clear error, never a traceback.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from mlflow import MlflowClient

from tests._mlflow_server import MlflowServer  # the session fixture `mlflow_server` is in tests/conftest.py
from tests.integration._util import LLMOS, write_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# The compress measurements made short, on one thread (as in test_compress_cli).
FAST_REPORT = ["report.latency_runs=3", "report.throughput_batches=1", "report.warmup=1", "report.compile=never",
               "report.num_threads=1", "report.runtime.num_threads=1", 'report.runtime.compile="off"',
               "data.eval_limit=16"]


@dataclass(frozen=True)
class Trained:
    folder: Path
    home: Path  # the training client's LLMOS_HOME
    summary: dict
    stdout: str


def cli(*args: str, uri: str, home: Path, check: bool = True, timeout_s: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMOS_HOME": str(home), "LLMOS_TRACKING_URI": uri, "LLMOS_DEBUG": "0",
           "OMP_NUM_THREADS": "1"}
    out = subprocess.run([*LLMOS, *args], capture_output=True, text=True, timeout=timeout_s, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"llmos {' '.join(args)} exited {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


@pytest.fixture(scope="module")
def trained(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory,
            sentiment_csv: tuple[Path, Path]) -> Trained:
    """`llmos train` of tiny-bert (one epoch, 25 steps), tracked and registered as reviews@candidate
    through the server."""
    folder = tmp_path_factory.mktemp("tracking-server")
    train, test = sentiment_csv
    job = write_job(folder, f"""
name: reviews
output: {folder / 'run'}
model: {{name: tiny-bert, max_length: 32}}
data: {{train: {train}, eval: {test}}}
train: {{epochs: 1, batch_size: 8, lr: 0.005, log_every_steps: 5, num_threads: 1}}
checkpoint: {{every_steps: 100}}
tracking: {{experiment: team}}
register: {{name: reviews, alias: candidate}}
""")
    out = cli("train", str(job), uri=mlflow_server.url, home=folder / "home")
    return Trained(folder, folder / "home", json.loads((folder / "run" / "summary.json").read_text()), out.stdout)


def _client(server: MlflowServer) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def test_train_logs_and_registers_over_http(trained: Trained, mlflow_server: MlflowServer) -> None:
    client = _client(mlflow_server)
    run = client.get_run(trained.summary["run_id"])
    assert run.info.status == "FINISHED"
    # artifacts went through the server's proxy, into its destination, and nowhere on the client
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    stored = mlflow_server.artifacts / run.info.artifact_uri.removeprefix("mlflow-artifacts:/") / "model"
    assert (stored / "model.safetensors").read_bytes() == (trained.folder / "run" / "model" / "model.safetensors"
                                                           ).read_bytes()
    assert not (trained.home / "mlartifacts").exists() and not (trained.home / "mlflow.db").exists()

    assert run.data.params["train.lr"] == "0.005" and run.data.params["model.name"] == "tiny-bert"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [5, 10, 15, 20, 25]
    assert run.data.metrics["eval/accuracy"] == pytest.approx(trained.summary["metrics"]["accuracy"])
    assert {"job.json", "model", "summary.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}

    version = client.get_model_version_by_alias("reviews", "candidate")
    assert version.run_id == run.info.run_id and version.source.startswith("mlflow-artifacts:/")
    assert version.tags["data_hash"] == trained.summary["data_hash"] and version.tags["base_model"] == "tiny-bert"
    # MLflow's own chatter stays out of the command's output
    assert "registered     reviews version 1 @candidate" in trained.stdout
    assert "View run" not in trained.stdout and "Waiting up to" not in trained.stdout
    assert f"open {mlflow_server.url}" in trained.stdout and "mlflow ui" not in trained.stdout


def test_models_ls_show_alias_and_lineage(trained: Trained, mlflow_server: MlflowServer,
                                          tmp_path: Path) -> None:
    home = tmp_path / "other-client"  # another machine's view: only the server in common
    listed = json.loads(cli("models", "ls", "--json", uri=mlflow_server.url, home=home).stdout)
    by_name = {m["name"]: m for m in listed}  # the compress test may have added reviews-small
    assert by_name["reviews"]["aliases"]["candidate"] == "1" and by_name["reviews"]["latest_version"] == "1"

    cli("models", "alias", "reviews", "1", "production", uri=mlflow_server.url, home=home)
    shown = json.loads(cli("models", "show", "reviews@production", "--json", uri=mlflow_server.url, home=home).stdout)
    (version,) = shown["versions"]
    assert version["version"] == "1" and sorted(version["aliases"]) == ["candidate", "production"]
    assert version["run_id"] == trained.summary["run_id"] and version["tags"]["recipe"] == "train"
    assert version["metrics"]["eval/accuracy"] == pytest.approx(trained.summary["metrics"]["accuracy"])
    assert shown["alias_history"]["production"] == ["1"]


def _serve(home: Path, uri: str, ref: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "LLMOS_HOME": str(home), "LLMOS_TRACKING_URI": uri, "LLMOS_DEBUG": "0",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*LLMOS, "serve", ref, "--port", "0", "--threads", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:  # "llmos serve: reviews@candidate (version 1, classification) on http://...; loading"
        match = re.search(r" on (http://\S+);", line)
        if match:
            break
    else:
        raise AssertionError(f"llmos serve exited with {proc.wait()}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
    deadline = time.monotonic() + 120
    while httpx.get(f"{match[1]}/readyz").status_code != 200:
        assert proc.poll() is None and time.monotonic() < deadline, "never became ready"
        time.sleep(0.1)
    return proc, match[1]


@pytest.fixture
def stop_later() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_serve_fetches_the_version_from_the_server(trained: Trained, mlflow_server: MlflowServer,
                                                  tmp_path: Path, stop_later: list) -> None:
    home = tmp_path / "serving-node"  # an empty cache: the model must come over HTTP
    proc, url = _serve(home, mlflow_server.url, "reviews@candidate")
    stop_later.append(proc)
    body = httpx.post(f"{url}/v1/classify", json={"input": ["a wonderful film", "a dull film"]}).json()
    assert body["model"] == "reviews" and [d["label"] in ("negative", "positive") for d in body["data"]] == [True] * 2
    fetched = home / "cache" / "models" / "reviews" / "1"
    assert (fetched / "model.safetensors").read_bytes() == (trained.folder / "run" / "model" / "model.safetensors"
                                                            ).read_bytes()


def test_compress_registers_a_child_with_lineage(trained: Trained, mlflow_server: MlflowServer,
                                                 tmp_path: Path, sentiment_csv: tuple[Path, Path]) -> None:
    home = tmp_path / "compress-node"
    out = cli("compress", "reviews/1", "--recipe", "bf16", "--eval", str(sentiment_csv[1]), "--name", "reviews-small",
              "--output", str(tmp_path / "work"), *FAST_REPORT, uri=mlflow_server.url, home=home).stdout
    assert "registered reviews-small/1  bf16" in out

    client = _client(mlflow_server)
    child = client.get_model_version("reviews-small", "1")
    assert child.tags["parent"] == "reviews/1" and child.tags["recipe"] == "bf16"
    assert child.source.startswith("mlflow-artifacts:/") and child.run_id != trained.summary["run_id"]
    shown = json.loads(cli("models", "show", "reviews-small/1", "--json", uri=mlflow_server.url, home=home).stdout)
    assert shown["versions"][0]["tags"]["parent"] == "reviews/1"


def test_a_server_handing_out_local_artifact_paths_is_warned_about(mlflow_server: MlflowServer,
                                                                   tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """An experiment whose artifact root is a plain path (a server without --serve-artifacts gives
    every new one such a root) makes each client write its own disk: llmos says so."""
    import mlflow

    from llmos.spec import TrackingSpec
    from llmos.tracking import start_run

    _client(mlflow_server).create_experiment("unshared", artifact_location=str(tmp_path / "only-here"))
    try:
        with start_run(TrackingSpec(uri=mlflow_server.url, experiment="unshared", system_metrics=False),
                       run_name="r", job={}, tags={}):
            pass
    finally:  # start_run set MLflow's global URI: leave no trace for other tests
        mlflow.set_tracking_uri(None)
    assert "a path each machine writes on its own disk" in caplog.text and "--serve-artifacts" in caplog.text


class _NotMlflow(http.server.BaseHTTPRequestHandler):
    """A web server that is up, and not MLflow: 404 for the API (a proxy's default site), or a
    200 page for every path (`answer_all`)."""

    answer_all = False

    def do_GET(self) -> None:
        self.send_response(200 if self.answer_all else 404)
        self.send_header("content-type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html><body>welcome to nginx</body></html>")

    def log_message(self, *args: object) -> None:
        pass


class _PageForAll(_NotMlflow):
    answer_all = True


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket closes


def test_unreachable_or_foreign_server_is_one_clear_error(tmp_path: Path) -> None:
    down = cli("models", "ls", uri=f"http://127.0.0.1:{_closed_port()}", home=tmp_path, check=False, timeout_s=60)
    assert down.returncode == 2 and "Traceback" not in down.stderr
    assert "cannot reach the MLflow tracking server" in down.stderr
    assert "--tracking" in down.stderr and "LLMOS_TRACKING_URI" in down.stderr and "mlflow server" in down.stderr

    for handler, args in ((_NotMlflow, ("models", "ls")), (_PageForAll, ("serve", "reviews@candidate", "--port", "0"))):
        web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        try:
            wrong = cli(*args, uri=f"http://127.0.0.1:{web.server_address[1]}", home=tmp_path, check=False,
                        timeout_s=60)
        finally:
            web.shutdown()
            web.server_close()
        assert wrong.returncode == 2 and "Traceback" not in wrong.stderr, wrong.stderr
        assert "answers, but not as an MLflow tracking server" in wrong.stderr
        assert "welcome to nginx" in wrong.stderr and "LLMOS_TRACKING_URI" in wrong.stderr
