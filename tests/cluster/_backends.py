"""The two ways a test cluster runs its nodes: network namespaces (each node a "host" with its own
address) and, where those are not available, Ray's own one-host test cluster."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.cluster import _netns
from tests.cluster._rayproc import (
    START_TIMEOUT_S,
    check_ray_start,
    claim_slot,
    free_port,
    gcs_nodes,
    kill,
    listening,
    pids,
    popen_ray_start,
    ray_env,
    wait,
)

__all__ = ["NODE_CPUS", "NODE_MEMORY_BYTES", "OBJECT_STORE_BYTES", "Local", "Namespaces"]

NODE_CPUS = 2  # Ray logical CPUs: the cluster-mode tests need a node that holds a 2-worker gang after another is lost
NODE_MEMORY_BYTES = 4 << 30
OBJECT_STORE_BYTES = 100 << 20  # Ray's floor is 75 MiB; the default (30% of RAM per node) is far too much here


class Namespaces:
    """Head in the root namespace on the bridge's address, each worker node in its own namespace."""

    mode = "netns"

    def __init__(self, names: list[str], memory_bytes: int, health_check_period_ms: int | None) -> None:
        self._health_check_period_ms = health_check_period_ms
        self.slot, self._lock = claim_slot()
        self.net = _netns.Net(self.slot)
        self.temp_root = Path(f"/tmp/llmos-tc{self.slot}")  # short: Ray's socket paths must stay < 108 bytes
        self._memory_bytes = memory_bytes
        self._cleanup()
        try:
            self.nodes = _netns.create(self.net, names)
        except BaseException:
            self.stop()
            raise
        self.head_ip = self.net.head_ip
        self.address = f"{self.head_ip}:{free_port(6380 + 10 * self.slot)}"

    def start_all(self, names: list[str]) -> None:
        """The head, then the worker nodes as soon as its GCS listens (while the head's other processes
        still start: ~7 s sooner than after `ray start --head` returns)."""
        # --num-cpus=0: no task or worker lands on the head, which is the daemon's (the driver's) machine.
        # The GCS declares a node dead after health_check_failure_threshold (5) missed checks, one every
        # health_check_period_ms (Ray's default 3000: ~15 s from a lost machine to a dead node).
        env = ray_env(self.slot, "head")
        if self._health_check_period_ms is not None:
            env["RAY_health_check_period_ms"] = str(self._health_check_period_ms)
        host, port = self.address.rsplit(":", 1)
        head = popen_ray_start(["--head", "--port", port, "--num-cpus=0", "--include-dashboard=false",
                                *self._common("head", self.head_ip)], env)
        wait("the GCS listening", lambda: head.poll() is not None or listening(host, int(port)), START_TIMEOUT_S)
        workers = [self._popen_node(name) for name in names]
        for name, proc in [("head", head), *zip(names, workers, strict=True)]:
            check_ray_start(name, proc)

    def start(self, name: str) -> None:
        check_ray_start(name, self._popen_node(name))

    def _popen_node(self, name: str) -> subprocess.Popen[str]:
        """`ray start` of a worker node (each node has its own temp dir: nodes started at once never share a
        socket name)."""
        return popen_ray_start(["--address", self.address, f"--num-cpus={NODE_CPUS}", f"--memory={self._memory_bytes}",
                                *self._common(name, self.nodes[name])], ray_env(self.slot, name),
                               prefix=self.command_on(name, []))

    def _common(self, name: str, ip: str) -> list[str]:
        # No log monitor: it streams workers' output to drivers, and llmos's drivers (the daemon, the
        # tests) connect with log_to_driver=False; it polled the nodes' log folders all run long.
        return ["--node-ip-address", ip, f"--object-store-memory={OBJECT_STORE_BYTES}",
                f"--temp-dir={self.temp_root / name}", "--disable-usage-stats", "--include-log-monitor=false"]

    def kill(self, name: str) -> None:
        kill(_netns.pids_on(self.net.namespace(name)) + pids(f"{self.slot}:{name}", self.temp_root / name))

    def node_id(self, name: str) -> str | None:
        ip = self.nodes[name]
        alive = [row["node_id"] for row in gcs_nodes(self.address) if row["ip"] == ip and row["alive"]]
        return alive[0] if alive else None

    def command_on(self, name: str, argv: list[str]) -> list[str]:
        return _netns.command_on(self.net, name, argv)

    def hostname(self, name: str) -> str:
        return self.net.namespace(name)

    def stop(self) -> None:
        self._cleanup()
        self._lock.close()

    def _cleanup(self) -> None:
        """End every process of this slot (ours or a crashed run's; Ray's and whatever tests started on its
        nodes), then its namespaces, bridge and files."""
        for _ in range(3):  # a process may fork while we kill its siblings
            on_nodes = [pid for namespace in _netns.namespaces(self.net) for pid in _netns.pids_on(namespace)]
            kill(on_nodes + pids(f"{self.slot}:", self.temp_root))
        _netns.destroy(self.net)
        shutil.rmtree(self.temp_root, ignore_errors=True)


class Local:
    """Ray's own multi-node test cluster (ray.cluster_utils.Cluster): every node on 127.0.0.1."""

    mode = "local"

    def __init__(self, names: list[str], memory_bytes: int, health_check_period_ms: int | None) -> None:
        from ray.cluster_utils import Cluster

        self._memory_bytes = memory_bytes
        config = {} if health_check_period_ms is None else {"health_check_period_ms": health_check_period_ms}
        self._cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "include_dashboard": False, "object_store_memory": OBJECT_STORE_BYTES,
            "_system_config": config})
        self.address = self._cluster.address
        self.head_ip = self.address.rsplit(":", 1)[0]
        self.nodes = dict.fromkeys(names, self.head_ip)
        self._ray_nodes: dict[str, Any] = {}

    def start(self, name: str) -> None:
        self._ray_nodes[name] = self._cluster.add_node(num_cpus=NODE_CPUS, memory=self._memory_bytes,
                                                       object_store_memory=OBJECT_STORE_BYTES)

    def start_all(self, names: list[str]) -> None:
        for name in names:
            self.start(name)

    def kill(self, name: str) -> None:
        """The node's own processes, and everything its raylet started (workers and their children, which
        on a lost machine die with it)."""
        import psutil

        node = self._ray_nodes.pop(name)
        raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
        started = [p.pid for p in raylet.children(recursive=True)]
        self._cluster.remove_node(node, allow_graceful=False)
        kill(started)

    def node_id(self, name: str) -> str | None:
        node = self._ray_nodes.get(name)
        if node is None:
            return None
        alive = {row["node_id"] for row in gcs_nodes(self.address) if row["alive"]}
        return node.node_id if node.node_id in alive else None

    def command_on(self, name: str, argv: list[str]) -> list[str]:
        return argv

    def hostname(self, name: str) -> str:
        return self.nodes[name]

    def stop(self) -> None:
        self._cluster.shutdown()
