"""Deployments in cluster mode on a real Ray cluster (tests/cluster/conftest.py): a real daemon started
with `llmos up --ray HEAD --storage FOLDER` places each `llmos serve` replica of a tiny registered model
on a node, listening on that node's address; the front router on the head routes across the nodes;
a SIGKILLed daemon's successor adopts the replicas by their actors' names; a replica whose node is lost
is replaced once a node has room again, and the front answers throughout; a rolling update moves a
deployment to a new version on another node without a failed request; load scales a deployment out
onto the other node and idleness scales it back.

Each node offers 2 CPUs to Ray. In the first test each replica asks for 2: one replica per node, so the
placement is forced and a lost node leaves its replica with nowhere to go until the node comes back.
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
from tests._mlflow_server import MlflowServer
from tests.cluster._testcluster import TestCluster
from tests.cluster.test_cluster_jobs import Plane, wait_for
from tests.integration._deploy_util import Load

pytestmark = [pytest.mark.timeout(300)]

_REGISTER = """
import sys
from pathlib import Path
from tests.integration.test_deploy_serve import register_tiny
print(register_tiny(Path(sys.argv[1]), ["negative", "positive"]), register_tiny(Path(sys.argv[1]), ["bad", "good"],
      alias=None))
"""


class ServingPlane(Plane):
    versions: tuple[str, ...] = ()  # of the tiny model: the first is tiny@prod


@pytest.fixture(scope="module")
def plane(ray_cluster: TestCluster, tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer
          ) -> Iterator[ServingPlane]:
    """A control plane on the cluster with the team's MLflow server (the session's), where a tiny
    classifier is registered while the daemon starts: a version as tiny@prod, then one (other labels)
    without an alias (`versions`). Every replica fetches its model from the server."""
    p = ServingPlane(ray_cluster, tmp_path_factory.mktemp("deploy-home"),
              tracking=f"http://{ray_cluster.head_ip}:{mlflow_server.port}")
    work = tmp_path_factory.mktemp("deploy-models")
    register = subprocess.Popen([sys.executable, "-c", _REGISTER, str(work)], env=_tracked(p), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parents[2])
    try:
        p.up()
    finally:
        out, err = register.communicate(timeout=180)
    assert register.returncode == 0 and len(out.split()) == 2, err[-3000:]
    p.versions = tuple(out.split())
    try:
        yield p
    finally:
        p.down()


def _tracked(plane: Plane) -> dict[str, str]:
    return {**os.environ, "LLMOS_TRACKING_URI": plane.tracking}


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


def test_a_rolling_update_moves_to_the_new_version_on_another_node_without_a_failed_request(
        plane: ServingPlane, ray_cluster: TestCluster, ray_driver: ModuleType) -> None:
    port = free_port()
    args = ("deploy", "create", "tiny@prod", "--name", "roll", "--port", str(port), "--replicas", "1",
            "resources.cpus=1", "batching.max_wait_ms=1")
    plane.cli(*args)
    front = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: len(_ready_on(plane, "roll")) == 1, timeout_s=120, what="the first replica")
        [old] = _deployment(plane, "roll")["replicas"]
        second = plane.versions[1]
        with Load(f"{front}/v1/classify", clients=1, json={"input": "a fine film"}) as load:
            load.wait_for_ok(3)
            subprocess.run([sys.executable, "-c", f"from llmos.registry import set_alias; set_alias('tiny', "
                            f"'{second}', 'prod')"], env=_tracked(plane), check=True, timeout=120)
            plane.cli(*args)  # the same deployment again: it rolls to what tiny@prod names now
            wait_for(lambda: [(r["version"], r["state"]) for r in _deployment(plane, "roll")["replicas"]]
                     == [(f"tiny/{second}", "ready")], timeout_s=150, what="the roll to the second version")
            load.wait_for_ok(3)
        assert load.failures() == {}, load.codes
        labels = [reply["data"][0]["label"] for reply in load.replies]
        assert labels[0] in ("negative", "positive") and labels[-1] in ("bad", "good")  # version 1, then 2
        [new] = _deployment(plane, "roll")["replicas"]
        assert new["node"] != old["node"]  # spread: the node without a replica of the deployment had room
        if ray_cluster.mode == "netns":
            assert httpx.URL(new["url"]).host != httpx.URL(old["url"]).host
        print(f"rolled: {load.codes[200]} requests answered, none failed")
    finally:
        plane.cli("undeploy", "roll", check=False)
    wait_for(lambda: _classify(front) != 200, timeout_s=60, what="the front to stop")
    wait_for(lambda: not _replica_leftovers(ray_driver), timeout_s=30, what="the replicas' actors and groups to go")


def test_load_scales_a_deployment_onto_the_other_node_and_idle_scales_it_back(
        plane: ServingPlane, ray_cluster: TestCluster, ray_driver: ModuleType) -> None:
    """Autoscaling as locally: 8 clients back to back keep ~8 requests outstanding against a target of
    2 a replica, so a second replica starts; it needs a whole node (2 CPUs), so it lands on the other
    node, and the front spreads the load over both. Idle, the deployment returns to one replica."""
    port = free_port()
    plane.cli("deploy", "create", "tiny@prod", "--name", "elastic", "--port", str(port), "--replicas", "1:2",
              "resources.cpus=2", "batching.max_wait_ms=1", "autoscale.target_outstanding=2",
              "autoscale.upscale_cooldown_s=0", "autoscale.downscale_cooldown_s=3")
    front = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: len(_ready_on(plane, "elastic")) == 1, timeout_s=120, what="the first replica")
        with Load(f"{front}/v1/classify", clients=8, json={"input": "a fine film"}) as load:
            wait_for(lambda: len(_ready_on(plane, "elastic")) == 2, timeout_s=150, what="a second replica under load")
            served = {r["id"]: r["served"] for r in _deployment(plane, "elastic")["replicas"]}
            wait_for(lambda: all(r["served"] > served[r["id"]] for r in _deployment(plane, "elastic")["replicas"]),
                     timeout_s=30, what="requests on both replicas")
            load.wait_for_ok(10)
        d = _deployment(plane, "elastic")
        assert sorted(r["node"] for r in d["replicas"]) == sorted(ray_cluster.node_ids().values())
        if ray_cluster.mode == "netns":
            assert sorted(httpx.URL(r["url"]).host for r in d["replicas"]) == sorted(ray_cluster.nodes.values())
        assert load.failures() == {}, load.codes
        wait_for(lambda: len(_deployment(plane, "elastic")["replicas"]) == 1, timeout_s=90,
                 what="the scale down to one replica when idle")
        d = _deployment(plane, "elastic")
        assert d["desired"] == 1 and _classify(front) == 200
        print(*d["events"], sep="\n")
    finally:
        plane.cli("undeploy", "elastic", check=False)
    wait_for(lambda: _classify(front) != 200, timeout_s=60, what="the front to stop")
    wait_for(lambda: not _replica_leftovers(ray_driver), timeout_s=30, what="the replicas' actors and groups to go")


def _replica_leftovers(ray: ModuleType) -> list[str]:
    from ray.util import list_named_actors, placement_group_table

    actors = [a["name"] for a in list_named_actors(all_namespaces=True) if a["name"].startswith("llmos-replica-")]
    groups = [g["name"] for g in placement_group_table().values()
              if g["name"].startswith("llmos-replica-") and g["state"] != "REMOVED"]
    return actors + groups
