"""Deployments in cluster mode on a real Ray cluster (tests/cluster/conftest.py): a real daemon started
with `llmos up --ray HEAD --storage FOLDER` places each `llmos serve` replica of a tiny registered model
on a node, listening on that node's address; the front router on the head routes across the nodes;
a replica whose node is lost is replaced once a node has room again, and the front answers throughout.

Each node offers 2 CPUs to Ray and each replica asks for 2: one replica per node, so the placement is
forced and a lost node leaves its replica with nowhere to go until the node comes back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmos.deploy._process import free_port
from tests.cluster._testcluster import TestCluster
from tests.cluster.test_cluster_jobs import Plane, wait_for

pytestmark = [pytest.mark.timeout(300)]

_REGISTER = """
import sys
from pathlib import Path
from tests.integration.test_deploy_serve import register_tiny
print(register_tiny(Path(sys.argv[1]), ["negative", "positive"]))
"""


@pytest.fixture(scope="module")
def plane(ray_cluster: TestCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    import psutil

    p = Plane(ray_cluster, tmp_path_factory.mktemp("deploy-home"))
    p.up()
    try:
        yield p
    finally:
        p.cli("down", "--timeout-s", "60", check=False, timeout_s=90)
        info = p.home / "control" / "daemon.json"
        if info.exists() and psutil.pid_exists(json.loads(info.read_text())["pid"]):
            os.kill(json.loads(info.read_text())["pid"], signal.SIGKILL)


@pytest.fixture(scope="module")
def tiny(plane: Plane) -> str:
    """A tiny classifier registered as tiny@prod in the tracking store the daemon and every node use
    (SQLite and artifacts on the storage)."""
    home = plane.storage / "home"
    env = {**os.environ, "LLMOS_HOME": str(home), "LLMOS_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}
    out = subprocess.run([sys.executable, "-c", _REGISTER, str(home)], env=env, capture_output=True, text=True,
                         timeout=180, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    return "tiny@prod"


def _deployment(plane: Plane, name: str) -> dict:
    return json.loads(plane.cli("deploy", "show", name, "--json").stdout)


def _classify(url: str) -> int | str:
    try:
        return httpx.post(f"{url}/v1/classify", json={"input": "a fine film"}, timeout=10).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def _ready_on(plane: Plane, name: str) -> dict[str, str]:
    """Ready replicas: their id -> the address they listen on."""
    d = _deployment(plane, name)
    return {r["id"]: httpx.URL(r["url"]).host for r in d["replicas"] if r["state"] == "ready"}


def test_one_replica_per_node_through_one_front_and_a_lost_node_s_replica_is_replaced(
        plane: Plane, ray_cluster: TestCluster, tiny: str) -> None:
    port = free_port()
    plane.cli("deploy", "create", tiny, "--name", "tiny", "--port", str(port), "--replicas", "2",
              "resources.cpus=2", "batching.max_wait_ms=1")
    front = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: len(_ready_on(plane, "tiny")) == 2, timeout_s=150, what="2 ready replicas")
        d = _deployment(plane, "tiny")
        addresses = sorted(httpx.URL(r["url"]).host for r in d["replicas"])
        if ray_cluster.mode == "netns":  # each replica listens on its own node's address
            assert addresses == sorted(ray_cluster.nodes.values())
        assert sorted(r["node"] for r in d["replicas"]) == sorted(ray_cluster.node_ids().values())
        for r in d["replicas"]:  # reachable where the front reaches it
            assert httpx.get(f"{r['url']}/readyz", timeout=5).status_code == 200
        assert [_classify(front) for _ in range(6)] == [200] * 6

        # n2 is lost: its replica counts as exited; no node has room for a 2-CPU replica until n2 is back.
        lost_address = ray_cluster.nodes["n2"]
        before = _ready_on(plane, "tiny")
        gone = next(rid for rid, host in before.items() if host == lost_address)
        dead_after_s = ray_cluster.kill_node("n2")
        codes = [_classify(front) for _ in range(5)]
        wait_for(lambda: gone not in {r["id"] for r in _deployment(plane, "tiny")["replicas"]}, timeout_s=60,
                 what="the lost node's replica to be counted as exited")
        assert _deployment(plane, "tiny")["waiting"] == 1
        codes += [_classify(front) for _ in range(5)]
        assert codes == [200] * 10, codes  # the other node's replica answers throughout
        started = time.monotonic()
        ray_cluster.start_node("n2")
        wait_for(lambda: len(_ready_on(plane, "tiny")) == 2, timeout_s=150, what="the replacement replica")
        after = _ready_on(plane, "tiny")
        assert gone not in after and sorted(after.values()) == sorted(before.values())
        assert [_classify(front) for _ in range(4)] == [200] * 4
        print(f"node dead after {dead_after_s:.1f} s; replacement ready {time.monotonic() - started:.1f} s "
              "after the node came back")
    finally:
        plane.cli("undeploy", "tiny", check=False)
    wait_for(lambda: _classify(front) != 200, timeout_s=60, what="the front to stop")
