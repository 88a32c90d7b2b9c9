"""The test cluster that the cluster tests stand on: every worker node is a Ray node with its own
address, work pinned to a node runs there, nodes reach each other over TCP by name, a lost node is
reported dead and comes back, and a drained node stops taking work and leaves."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from types import ModuleType

import pytest

from tests.cluster._testcluster import NODE_CPUS, NODE_MEMORY_BYTES, RAY, TestCluster, gcs_nodes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _where() -> tuple[str, str, str]:
    import ray

    hostname = socket.gethostname()
    return hostname, socket.gethostbyname(hostname), ray.util.get_node_ip_address()


def _busy_until(folder: str, timeout_s: float) -> None:
    """Hold a worker until `folder`/release exists (on the shared storage): work that ends when the test
    says so; `folder`/started tells the test it runs."""
    open(os.path.join(folder, "started"), "w").close()
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(os.path.join(folder, "release")) and time.monotonic() < deadline:
        time.sleep(0.1)


def wait_until(check: Callable[[], object], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _alive(cluster: TestCluster, node_id: str) -> bool:
    return any(row["alive"] for row in gcs_nodes(cluster.address) if row["node_id"] == node_id)


def _expected(cluster: TestCluster, name: str) -> tuple[str, str, str]:
    ip = cluster.nodes[name]
    if cluster.mode == "netns":
        return cluster.hostname(name), ip, ip
    return socket.gethostname(), socket.gethostbyname(socket.gethostname()), ip


def test_nodes_have_their_own_addresses_and_cpus(ray_cluster: TestCluster, ray_driver: ModuleType) -> None:
    alive = [node for node in ray_driver.nodes() if node["Alive"]]
    assert len(alive) == 1 + len(ray_cluster.nodes)
    by_id = {node["NodeID"]: node for node in alive}
    for name, node_id in ray_cluster.node_ids().items():
        node = by_id.pop(node_id)
        assert node["NodeManagerAddress"] == ray_cluster.nodes[name]
        assert node["Resources"]["CPU"] == NODE_CPUS
        assert node["Resources"]["memory"] == NODE_MEMORY_BYTES
        assert node["Labels"]["ray.io/node-id"] == node_id
    (head,) = by_id.values()  # what is left is the head: no CPU, so no work lands on the driver's machine
    assert head["NodeManagerAddress"] == ray_cluster.head_ip
    assert "CPU" not in head["Resources"]
    if ray_cluster.mode == "netns":
        assert len({*ray_cluster.nodes.values(), ray_cluster.head_ip}) == 1 + len(ray_cluster.nodes)


def test_work_pinned_to_a_node_runs_there(ray_cluster: TestCluster, ray_driver: ModuleType) -> None:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

    where = ray_driver.remote(num_cpus=1)(_where)
    ids = ray_cluster.node_ids()
    for name, node_id in ids.items():
        task = where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
        assert ray_driver.get(task.remote(), timeout=60) == _expected(ray_cluster, name)
    # One bundle per worker, each on the node the policy chose, in the policy's order: the Ray executor's
    # placement. The label ray.io/node-id exists on every node in Ray 2.60.
    names = list(reversed(ids))
    group = ray_driver.util.placement_group([{"CPU": 1}] * len(names),
                                            bundle_label_selector=[{"ray.io/node-id": ids[n]} for n in names])
    try:
        assert group.wait(60)
        for index, name in enumerate(names):
            strategy = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index)
            assert ray_driver.get(where.options(scheduling_strategy=strategy).remote(),
                                  timeout=60) == _expected(ray_cluster, name)
    finally:
        ray_driver.util.remove_placement_group(group)


SERVER = """import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); s.listen(); print(s.getsockname()[1], flush=True)
c, peer = s.accept(); c.sendall(f"{socket.gethostname()} {peer[0]}".encode()); c.close()"""
CLIENT = """import socket, sys
print(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10).recv(200).decode())"""


def test_processes_on_two_nodes_connect_over_tcp(ray_cluster: TestCluster) -> None:
    """What a gloo or nccl rendezvous needs: a process on n2 reaches one listening on n1 by its name."""
    server = subprocess.Popen(ray_cluster.command_on("n1", [sys.executable, "-c", SERVER, ray_cluster.nodes["n1"]]),
                              stdout=subprocess.PIPE, text=True)
    try:
        port = server.stdout.readline().strip()  # type: ignore[union-attr]
        client = subprocess.run(ray_cluster.command_on("n2", [sys.executable, "-c", CLIENT,
                                                              ray_cluster.hostname("n1"), port]),
                                capture_output=True, text=True, timeout=30)
        assert client.returncode == 0, client.stderr
        assert client.stdout.split() == [_expected(ray_cluster, "n1")[0], ray_cluster.nodes["n2"]]
    finally:
        server.kill()
        server.wait()


def test_a_lost_node_is_reported_dead_and_comes_back(ray_cluster: TestCluster, ray_driver: ModuleType) -> None:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    lost = ray_cluster.node_ids()["n2"]
    dead_after_s = ray_cluster.kill_node("n2")
    assert dead_after_s < 30
    assert "n2" not in ray_cluster.node_ids()
    assert not [node for node in ray_driver.nodes() if node["NodeID"] == lost and node["Alive"]]

    ray_cluster.start_node("n2")
    back = ray_cluster.node_ids()["n2"]
    assert back != lost
    on_n2 = NodeAffinitySchedulingStrategy(back, soft=False)
    task = ray_driver.remote(num_cpus=1)(_where).options(scheduling_strategy=on_n2)
    assert ray_driver.get(task.remote(), timeout=60) == _expected(ray_cluster, "n2")


def test_a_drained_node_takes_no_new_work_and_leaves_when_idle(ray_cluster: TestCluster,
                                                               ray_driver: ModuleType) -> None:
    """`ray drain-node`: the GCS lists the node as draining (ray.nodes() still says Alive, with no sign of
    it), new work is refused, and once its running work ends the node exits, dead with reason 3
    (AUTOSCALER_DRAIN_PREEMPTED) and the operator's message."""
    from ray.exceptions import TaskUnschedulableError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node_id = ray_cluster.node_ids()["n1"]
    on_n1 = NodeAffinitySchedulingStrategy(node_id, soft=False)
    folder = ray_cluster.storage / f"drain-test-{time.time_ns()}"
    folder.mkdir()
    busy = ray_driver.remote(num_cpus=0.5)(_busy_until).options(scheduling_strategy=on_n1).remote(str(folder), 120)
    wait_until((folder / "started").exists, "the busy task running on n1")
    subprocess.run([str(RAY), "drain-node", "--address", ray_cluster.address, "--node-id", node_id,
                    "--reason", "DRAIN_NODE_REASON_PREEMPTION", "--reason-message", "maintenance"],
                   check=True, capture_output=True, timeout=60)
    (row,) = [row for row in gcs_nodes(ray_cluster.address) if row["node_id"] == node_id]
    assert row["alive"] and row["draining"]
    (node,) = [node for node in ray_driver.nodes() if node["NodeID"] == node_id]
    assert node["Alive"]
    with pytest.raises(TaskUnschedulableError):
        ray_driver.get(ray_driver.remote(num_cpus=0.5)(_where).options(scheduling_strategy=on_n1).remote(),
                       timeout=30)

    (folder / "release").touch()
    ray_driver.get(busy, timeout=60)
    wait_until(lambda: not _alive(ray_cluster, node_id), "a drained node leaving once idle", timeout_s=180)
    (node,) = [node for node in ray_driver.nodes() if node["NodeID"] == node_id]
    assert (node["Alive"], node["DeathReason"], node["DeathReasonMessage"]) == (False, 3, "maintenance")
    ray_cluster.start_node("n1")
