"""`llmos serve` end to end: a model trained through the real CLI and registered, served by a real
process on a free port, loaded with `llmos bench serve`, and drained with SIGTERM.

`python -m llmos.serve JOB.json` (what deployments start) runs in tests/integration/test_deploy_serve.py,
and the job `llmos serve --print-job` writes is checked in tests/unit/serve/test_serve_spec.py: a second
cold server start here would add tens of seconds and no coverage."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration._util import LLMOS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory, undisturbed_run: Path) -> Path:
    """`reviews@candidate` in a home of its own (shared by this module): the model that `llmos train`
    trained for the session (`undisturbed_run`), registered as the recipe registers one (training
    and registering through the CLI are tested in test_tracking_registry_cli.py)."""
    import shutil

    import mlflow

    from llmos.registry import register_model
    from llmos.spec import TrackingSpec
    from llmos.tracking import start_run

    home = tmp_path_factory.mktemp("serve-cli-home")
    model = shutil.copytree(undisturbed_run / "model", home / "trained")  # the session's folder stays as it is
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LLMOS_HOME", str(home))
        try:
            with start_run(TrackingSpec(system_metrics=False), run_name="reviews", job={}, tags={}) as tracker:
                uri = tracker.log_model_dir(model)
                register_model(name="reviews", run_id=tracker.run_id, artifact_uri=uri, alias="candidate",
                               tags={"recipe": "train"})
        finally:  # start_run set MLflow's global URI to this home: leave no trace for other tests
            mlflow.set_tracking_uri(None)
    return home


def _start(argv: list[str], home: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "LLMOS_HOME": str(home), "OMP_NUM_THREADS": "1", **env})
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:  # "llmos serve: reviews@candidate (version 1, classification) on http://...; loading"
        match = re.search(r" on (http://\S+);", line)
        if match:
            url = match[1]
            break
        assert time.monotonic() < deadline, "no address printed"
    else:
        raise AssertionError(f"server exited with {proc.wait()}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
    while httpx.get(f"{url}/readyz").status_code != 200:
        assert proc.poll() is None and time.monotonic() < deadline, "never became ready"
        time.sleep(0.1)
    return proc, url


@pytest.fixture
def stop_later() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_serve_auth_bench_and_drain(registered: Path, stop_later: list) -> None:
    proc, url = _start([*LLMOS, "serve", "reviews@candidate", "--port", "0", "--max-batch-size", "1",
                        "--max-queue", "2048", "--threads", "1",
                        "limits.max_input_tokens=256", "limits.max_inputs=256"], registered, LLMOS_API_KEY="k3y")
    stop_later.append(proc)
    auth = {"authorization": "Bearer k3y"}
    assert httpx.post(f"{url}/v1/classify", json={"input": ["fine"]}).status_code == 401
    body = httpx.post(f"{url}/v1/classify", json={"input": ["a wonderful film"]}, headers=auth).json()
    assert body["model"] == "reviews" and body["data"][0]["label"] in ("negative", "positive")

    bench = subprocess.run([*LLMOS, "bench", "serve", url, "--duration", "2s", "--warmup", "0.5s",
                            "--concurrency", "4", "--json", "-"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "LLMOS_API_KEY": "k3y"})
    assert bench.returncode == 0, bench.stderr
    report = json.loads(bench.stdout)
    assert report["route"] == "/v1/classify" and report["ok"] > 10 and report["errors"] == {}
    assert report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"]

    # SIGTERM while requests are in flight (6 x 256 inputs, one per forward pass: the first request
    # alone is a second or more of work, so all six are in before any ends, even on a busy machine):
    # they finish with 200, then the process exits 0.
    results: list[int] = []

    def request() -> None:
        r = httpx.post(f"{url}/v1/classify", json={"input": ["a long enough review of a film " * 20] * 256},
                       headers=auth, timeout=120)
        results.append(r.status_code)

    threads = [threading.Thread(target=request) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while _inflight(url, auth) < len(threads):  # all six are in the server before the signal
        assert time.monotonic() < deadline and not results, results
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=120)
    assert proc.wait(timeout=120) == 0
    assert results == [200] * 6


def _inflight(url: str, auth: dict[str, str]) -> float:
    text = httpx.get(f"{url}/metrics", headers=auth).text
    return float(re.search(r"^llmos_inflight_requests (\S+)$", text, re.M)[1])  # type: ignore[index]


def test_unknown_model_fails_before_listening(registered: Path) -> None:
    env = {**os.environ, "LLMOS_HOME": str(registered), "LLMOS_DEBUG": "0"}
    out = subprocess.run([*LLMOS, "serve", "nope@candidate", "--port", "0"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "nope" in out.stderr and "llmos models ls" in out.stderr
