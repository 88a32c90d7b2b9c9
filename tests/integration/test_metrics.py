"""Prometheus `/metrics` scraped from a real control-plane daemon (`llmos up`) and from a real
deployment front router, read with prometheus-client's own text parser: the series move as jobs
are submitted, run and cancelled, and as requests pass through the front to each replica."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmos.deploy import DeploymentController
from llmos.spec import ServeJob
from tests.integration._deploy_util import running, standin_spawn, wait_until
from tests.integration._util import llmos

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, **headers: str) -> tuple[Samples, str]:
    """Every sample of `url` (name and labels -> value), read with prometheus-client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples}
    return samples, response.text


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def daemon(llmos_home: Path) -> Iterator[str]:
    """`llmos up` on a free port, told the host has 2 cores; its URL. Always stopped after."""
    llmos("up", "--port", "0", "--cpus", "2", timeout_s=120)
    info = json.loads((llmos_home / "control" / "daemon.json").read_text())
    try:
        yield info["url"]
    finally:
        llmos("down", "--timeout-s", "30", check=False, timeout_s=60)
        import psutil

        if psutil.pid_exists(info["pid"]):
            os.kill(info["pid"], signal.SIGKILL)


def test_the_daemon_metrics_follow_the_queue_the_states_and_the_allocation(daemon: str) -> None:
    from llmos.control import Client

    client = Client.local()
    metrics = f"{daemon}/metrics"
    sleep = [sys.executable, "-c", "import time; time.sleep(60)", "--password=hunter2"]
    holder = client.submit({"kind": "command", "name": "holder-secret-name", "run": sleep, "resources": {"cpus": 1}})
    wait_until(lambda: client.job(holder["id"])["state"] == "RUNNING", 60, "the first job to run")
    waiting = client.submit({"kind": "command", "name": "waiter", "run": sleep, "resources": {"cpus": 2}},
                            priority="low", project="team-a")  # low: it cannot preempt the holder
    samples, text = scrape(metrics)  # no token: Prometheus scrapes without one
    assert value(samples, "llmos_jobs", state="RUNNING") == 1 and value(samples, "llmos_jobs", state="QUEUED") == 1
    assert value(samples, "llmos_queue_length", **{"class": "low", "project": "team-a"}) == 1
    assert value(samples, "llmos_capacity", node="local", resource="cpus") == 2
    assert value(samples, "llmos_allocated", node="local", resource="cpus") == 1
    assert value(samples, "llmos_allocated", node="local", resource="gpus") == 0
    assert ("llmos_scheduler_round_seconds_count", frozenset()) in samples
    assert ("llmos_scheduler_preemptions_total", frozenset()) in samples
    # Counts only: no job name, argument, spec or path in any label or value.
    for secret in ("holder-secret-name", "hunter2", "waiter", "time.sleep", str(Path.home())):
        assert secret not in text
    client.cancel(waiting["id"])
    client.cancel(holder["id"])
    wait_until(lambda: client.job(holder["id"])["state"] == "CANCELLED", 60, "the cancel")
    samples, _ = scrape(metrics)
    assert value(samples, "llmos_jobs", state="CANCELLED") == 2 and value(samples, "llmos_jobs", state="RUNNING") == 0
    assert value(samples, "llmos_queue_length", **{"class": "low", "project": "team-a"}) == 0
    wait_until(lambda: value(scrape(metrics)[0], "llmos_allocated", node="local", resource="cpus") == 0, 30,
               "the cancelled job's cores to be freed")


def test_the_front_counts_each_replicas_requests_latency_and_errors(tmp_path: Path) -> None:
    job = ServeJob.model_validate({"kind": "serve", "name": "demo", "model": "demo@prod",
                                   "replicas": {"min": 2, "max": 2}})
    ctrl = DeploymentController("demo", job, state_dir=tmp_path / "deploy", front_port=0,
                                spawn=standin_spawn({"STANDIN_READY_DELAY_S": "1"}),
                                resolve_model=lambda ref, uri: "demo/1")
    with running(ctrl):
        front = ctrl.status().front_url
        assert httpx.post(f"{front}/work", timeout=5).status_code == 503  # no replica is ready yet
        wait_until(lambda: ctrl.status().ready == 2, 20, "two ready replicas")
        answered: dict[str, int] = {}
        with httpx.Client(timeout=10) as http:
            for _ in range(12):
                reply = http.post(f"{front}/work?ms=30")
                assert reply.status_code == 200
                replica = reply.headers["x-llmos-replica"]
                answered[replica] = answered.get(replica, 0) + 1
            missing = http.get(f"{front}/no-such-route")
        samples, text = scrape(f"{front}/metrics")
    assert missing.status_code == 404 and len(answered) == 2, answered
    for replica, n in answered.items():
        got_404 = missing.headers["x-llmos-replica"] == replica
        assert value(samples, "llmos_front_requests_total", replica=replica, status="200") == n
        assert value(samples, "llmos_front_requests_total", replica=replica, status="404") == got_404
        assert value(samples, "llmos_front_request_latency_seconds_count", replica=replica) == n + got_404
        assert value(samples, "llmos_front_request_latency_seconds_sum", replica=replica) >= 0.03 * n
        assert value(samples, "llmos_front_request_latency_seconds_bucket", replica=replica, le="0.025") <= got_404
        assert value(samples, "llmos_front_replica_ready", replica=replica) == 1
    assert value(samples, "llmos_front_errors_total", replica="", kind="unavailable") >= 1
    assert "work" not in text  # no path in any label
