"""The executor package's pure parts: Ray's node records as hosts, the kinds table, how a Ray
attempt's workers are ranked and how their exits combine; and that local mode never loads Ray."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmos.executor import KINDS, Cluster, Inventory, Request, kind_of
from llmos.executor._ray import _combined, _local_ranks, _worker_env
from llmos.executor._ray_inventory import hosts_from_ray


def record(node_id: str, ip: str, cpus: float, alive: bool = True, **resources: float) -> dict:
    return {"NodeID": node_id, "Alive": alive, "NodeManagerAddress": ip,
            "Resources": {"CPU": cpus, "memory": 8e9, f"node:{ip}": 1.0, **resources}}


def test_ray_nodes_become_hosts_alive_with_cpus_and_not_draining_only() -> None:
    nodes = [record("b" * 8, "10.0.0.3", 4, GPU=2, **{"accelerator_type:A100": 1}),
             record("a" * 8, "10.0.0.2", 2),
             record("head", "10.0.0.1", 0),  # the head offers no CPUs
             record("dead", "10.0.0.4", 8, alive=False),
             record("drain", "10.0.0.5", 8)]
    cluster = hosts_from_ray(nodes, draining=["drain"])
    assert cluster.backend == "ray"
    assert [(h.name, h.address, len(h.cores), h.pin) for h in cluster.hosts] == [
        ("a" * 8, "10.0.0.2", 2, False), ("b" * 8, "10.0.0.3", 4, False)]
    gpu_host = cluster.host("b" * 8)
    assert gpu_host is not None and [g.name for g in gpu_host.gpus] == ["A100", "A100"]
    assert gpu_host.node().gpu_type == "A100" and gpu_host.memory_gb == pytest.approx(8.0)
    described = cluster.describe()
    assert described["cpus"] == 6 and [n["address"] for n in described["nodes"]] == ["10.0.0.2", "10.0.0.3"]


def test_the_kinds_table_holds_every_kind_s_request_and_stop_meaning() -> None:
    from llmos.spec import CommandJob, parse_job

    assert {"train", "compress", "command", "serve", "pipeline"} <= set(KINDS)  # sweep joins too
    assert not KINDS["serve"].queued and KINDS["compress"].restarts and not KINDS["train"].restarts
    assert not KINDS["pipeline"].queued  # its stages are the jobs
    two_nodes = parse_job({"data": {"train": "a.csv"}, "resources": {"procs": 2, "nodes": 2, "cpus_per_proc": 3}})
    assert kind_of(two_nodes).request(two_nodes) == Request(4, 3, 0.0, 0, same_node=False)
    one = CommandJob(run=["true"], resources={"cpus": 2, "gpus": 1})
    assert kind_of(one).request(one) == Request(1, 2, 0.0, 1, same_node=True)
    from llmos.errors import SpecError

    with pytest.raises(SpecError, match="cannot be submitted"):
        kind_of("evaluate")


def test_ray_workers_get_global_and_local_ranks_and_one_exit_code() -> None:
    workers = [{"node": "a", "cores": [0]}, {"node": "b", "cores": [0]}, {"node": "a", "cores": [1]}]
    assert _local_ranks(workers) == [(0, 2), (0, 1), (1, 2)]
    env = _worker_env(7, {"node": "a", "cores": [0, 1], "gpus": [3]}, 2, 3, (1, 2), "10.0.0.2", 29500, "/s/j")
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"]) == ("2", "3", "1", "2")
    assert (env["MASTER_ADDR"], env["MASTER_PORT"], env["OMP_NUM_THREADS"]) == ("10.0.0.2", "29500", "2")
    assert env["CUDA_VISIBLE_DEVICES"] == "3"
    assert _combined([0, 0]) == 0 and _combined([75, 0]) == 75 and _combined([75, 1, -9]) == 1
    assert _combined([0, -15]) == 0  # rank 0 finished the run; rank 1 was stopped while shutting down


def test_local_mode_never_imports_ray() -> None:
    code = ("import sys; import llmos.control._daemon, llmos.control._loop, llmos.executor, llmos.cli.main; "
            "from llmos.executor import LocalExecutor; LocalExecutor(); "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_cluster_of_one_host_is_the_local_machine() -> None:
    host = Inventory(cores=(0, 1), memory_gb=4.0)
    assert Cluster.of(host).backend == "local" and Cluster.of(host).nodes()[0].name == "local"
