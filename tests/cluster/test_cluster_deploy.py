"""Deployments in cluster mode on a real Ray cluster (tests/cluster/conftest.py): a real daemon started
with `llmos up --ray HEAD --storage FOLDER` places each `llmos serve` replica of a tiny registered model
on a node, listening on that node's address; the front router on the head routes across the nodes;
a SIGKILLed daemon's successor adopts the replicas by their actors' names; a replica whose node is lost
is replaced once a node has room again, and the front answers throughout.

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
from types import ModuleType

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
    """A control plane on the cluster, with a tiny classifier registered as tiny@prod (while it starts) in
    the tracking store that the daemon and every node use: SQLite and artifacts on the storage."""
    import psutil

    p = Plane(ray_cluster, tmp_path_factory.mktemp("deploy-home"))
    home = p.storage / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LLMOS_HOME": str(home), "LLMOS_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}
    register = subprocess.Popen([sys.executable, "-c", _REGISTER, str(home)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        p.up()
    finally:
        out, err = register.communicate(timeout=180)
    assert register.returncode == 0 and out.strip() == "1", err[-3000:]
    try:
        yield p
    finally:
        p.cli("down", "--timeout-s", "60", check=False, timeout_s=90)
        info = p.home / "control" / "daemon.json"
        if info.exists() and psutil.pid_exists(json.loads(info.read_text())["pid"]):
            os.kill(json.loads(info.read_text())["pid"], signal.SIGKILL)


def _deployment(plane: Plane, name: str) -> dict:
    """The deployment as the REST API shows it (what `llmos deploy show --json` prints), asked directly:
    polling through the CLI would start a Python process every look, beside the replicas loading."""
    daemon = json.loads((plane.home / "control" / "daemon.json").read_text())
    token = (plane.home / "control" / "admin.token").read_text().strip()
    response = httpx.get(f"{daemon['url']}/v1/deployments/{name}", headers={"Authorization": f"Bearer {token}"},
                         timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _classify(url: str) -> int | str:
    try:
        return httpx.post(f"{url}/v1/classify", json={"input": "a fine film"}, timeout=10).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def _ready_on(plane: Plane, name: str) -> dict[str, str]:
    """Ready replicas: their id -> the address they listen on."""
    d = _deployment(plane, name)
    return {r["id"]: httpx.URL(r["url"]).host for r in d["replicas"] if r["state"] == "ready"}


def test_one_replica_per_node_through_one_front_adopted_after_a_restart_and_replaced_after_a_node_loss(
        plane: Plane, ray_cluster: TestCluster, ray_driver: ModuleType) -> None:
    port = free_port()
    plane.cli("deploy", "create", "tiny@prod", "--name", "tiny", "--port", str(port), "--replicas", "2",
              "resources.cpus=2", "batching.max_wait_ms=1")
    front = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: len(_ready_on(plane, "tiny")) == 2, timeout_s=150, what="2 ready replicas")
        d = json.loads(plane.cli("deploy", "show", "tiny", "--json").stdout)  # as the CLI shows it
        addresses = sorted(httpx.URL(r["url"]).host for r in d["replicas"])
        if ray_cluster.mode == "netns":  # each replica listens on its own node's address
            assert addresses == sorted(ray_cluster.nodes.values())
        assert sorted(r["node"] for r in d["replicas"]) == sorted(ray_cluster.node_ids().values())
        for r in d["replicas"]:  # reachable where the front reaches it
            assert httpx.get(f"{r['url']}/readyz", timeout=5).status_code == 200
        assert [_classify(front) for _ in range(6)] == [200] * 6

        # The daemon SIGKILLed: the front and the replicas (detached actors) keep serving; the next one adopts them.
        before = _ready_on(plane, "tiny")
        os.kill(json.loads((plane.home / "control" / "daemon.json").read_text())["pid"], signal.SIGKILL)
        assert _classify(front) == 200
        time.sleep(1)
        plane.up()
        log = (plane.home / "control" / "daemon.log").read_text()
        assert all(f"deployment tiny: adopted {rid} (" in log for rid in before), log[-3000:]
        wait_for(lambda: _ready_on(plane, "tiny") == before, timeout_s=30, what="the adopted replicas, ready")

        # n2 is lost: its replica counts as exited; no node has room for a 2-CPU replica until n2 is back.
        lost_address = ray_cluster.nodes["n2"]
        gone = next(rid for rid, host in before.items() if host == lost_address)
        dead_after_s = ray_cluster.kill_node("n2")
        codes = [_classify(front) for _ in range(5)]
        wait_for(lambda: gone not in {r["id"] for r in _deployment(plane, "tiny")["replicas"]}, timeout_s=60,
                 what="the lost node's replica to be counted as exited")
        wait_for(lambda: _deployment(plane, "tiny")["waiting"] == 1, timeout_s=10, what="its replacement to wait")
        codes += [_classify(front) for _ in range(5)]
        assert codes == [200] * 10, codes  # the other node's replica answers throughout
        started = time.monotonic()
        ray_cluster.start_node("n2")
        wait_for(lambda: len(_ready_on(plane, "tiny")) == 2, timeout_s=150, what="the replacement replica")
        after = _ready_on(plane, "tiny")
        assert gone not in after and sorted(after.values()) == sorted(before.values())
        assert [_classify(front) for _ in range(4)] == [200] * 4
        print(*_deployment(plane, "tiny")["events"], sep="\n")
        print(f"node dead after {dead_after_s:.1f} s; replacement ready {time.monotonic() - started:.1f} s "
              "after the node came back")
    finally:
        plane.cli("undeploy", "tiny", check=False)
    wait_for(lambda: _classify(front) != 200, timeout_s=60, what="the front to stop")
    # Nothing of the replicas is left in Ray: their actors and placement groups were given back.
    wait_for(lambda: not _replica_leftovers(ray_driver), timeout_s=30, what="the replicas' actors and groups to go")


def _replica_leftovers(ray: ModuleType) -> list[str]:
    from ray.util import list_named_actors, placement_group_table

    actors = [a["name"] for a in list_named_actors(all_namespaces=True) if a["name"].startswith("llmos-replica-")]
    groups = [g["name"] for g in placement_group_table().values()
              if g["name"].startswith("llmos-replica-") and g["state"] != "REMOVED"]
    return actors + groups
