"""Deployment replicas on the nodes of a Ray cluster (cluster mode), for the `DeploymentManager`:
which node a replica goes to, starting it there, whether it still runs, and finding it again after
a daemon restart.

A replica goes to a node with room for its resources beside the jobs and replicas there, spread
(`place_on_hosts`); it runs as a placement group of one bundle and a detached actor on that node
(`llmos.executor._ray_replica`), listening on the node's address. Its pin (what it holds) names its
node and actor, so the scheduler counts it there and a restarted daemon finds it by name. A node
where a replica vanished without an exit status is most likely lost: it gets no new replica for
`LOST_NODE_S`, since placing one there would only wait for Ray to declare the node dead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmos.control._capacity import Need, held_by, place_on_hosts, too_big_anywhere
from llmos.control._inventory import NODE, Inventory

if TYPE_CHECKING:
    from llmos.deploy._state import SavedReplica
    from llmos.executor import Cluster

__all__ = ["LOST_NODE_S", "NodeReplicas"]

LOST_NODE_S = 30.0


class NodeReplicas:
    """The replicas this control plane runs on Ray nodes, by actor name."""

    def __init__(self, hosts: Callable[[], Cluster], environ: Mapping[str, str]) -> None:
        """`hosts`: the cluster's hosts now; `environ`: what every replica gets (storage, llmos home
        on it, tracking URI)."""
        self.hosts, self.environ = hosts, dict(environ)
        self._replicas: dict[str, Any] = {}  # actor name -> RayReplica
        self._lost: dict[str, float] = {}  # node -> when a replica vanished there (monotonic)

    def place(self, name: str, need: Need, placements: Iterable[str | None],
              pins: Mapping[str, Mapping[str, Any]]) -> tuple[Inventory, list[int], list[int]] | str:
        """The node, cores and GPUs for a replica of deployment `name`, or what it waits for;
        DeployError when no node of the cluster could ever hold it."""
        from llmos.deploy import DeployError

        hosts = self.hosts().hosts
        if (why := too_big_anywhere(hosts, need)) is not None:
            raise DeployError(f"deployment {name}: a replica asks for {why}.",
                              hint="Lower the deployment's resources, or add larger nodes to the cluster.")
        now = time.monotonic()
        usable = tuple(h for h in hosts if now - self._lost.get(h.name, -LOST_NODE_S) >= LOST_NODE_S)
        placements = list(placements)
        held = {h.name: held_by(placements, pins.values(), h.name) for h in usable}
        mine: dict[str, int] = {}
        for pin in pins.values():
            if pin["deployment"] == name:
                mine[pin.get("node", NODE)] = mine.get(pin.get("node", NODE), 0) + 1
        return place_on_hosts(usable, held, need, mine)

    def start(self, name: str, room: tuple[Inventory, list[int], list[int]], need: Need, argv: list[str],
              env: dict[str, str], log_path: Path) -> tuple[Any, dict[str, Any]]:
        """Start the replica where `room` says: (its RayReplica, its pin). The job file (`argv[-1]`)
        is bound to the node's address and the port the actor found free there."""
        from llmos.deploy._replica import rebind_replica_job
        from llmos.executor._ray_replica import start_replica

        host, cores, gpus = room
        key = f"llmos-replica-{name}-{env['LLMOS_REPLICA']}-{uuid.uuid4().hex[:6]}"
        bundle: dict[str, float] = {"CPU": float(need.cpus)}
        if need.gpus:
            bundle["GPU"] = float(need.gpus)
        if need.memory_gb:
            bundle["memory"] = float(int(need.memory_gb * 1e9))
        replica = start_replica(key, host.name, bundle, argv, self._env(env, cores, gpus), log_path.parent.parent,
                                log_path, bind=lambda address, port: rebind_replica_job(Path(argv[-1]), address, port))
        self._replicas[key] = replica
        return replica, {"deployment": name, "cores": cores, "gpus": gpus, "memory_gb": need.memory_gb,
                         "started": replica.started_at, "node": host.name, "replica": env["LLMOS_REPLICA"],
                         "pid": replica.pid, "host": replica.host, "port": replica.port, "log": str(log_path)}

    def _env(self, env: dict[str, str], cores: list[int], gpus: list[int]) -> dict[str, str]:
        """A replica's environment on its node: llmos' own settings (not the daemon's whole environment,
        whose paths are this machine's), what every node shares, its threads and its GPUs."""
        threads = str(len(cores))
        own = {k: v for k, v in env.items() if k.startswith(("LLMOS_", "HF_"))}
        return {**own, **self.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": threads,
                "MKL_NUM_THREADS": threads, "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
                "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))}

    def adopt(self, saved: SavedReplica, log: Path) -> Any:
        """The replica an earlier daemon started (by its actor's name), if it still runs."""
        if saved.actor is None:
            return None
        return self._find(saved.actor, saved.pid, saved.host, saved.port, saved.started_at, log)

    def alive(self, key: str, pin: Mapping[str, Any]) -> bool:
        """Whether the pinned replica still runs (one pinned by an earlier daemon is looked up by name)."""
        replica = self._find(key, pin["pid"], pin["host"], pin["port"], pin["started"], Path(pin["log"]))
        if replica is None:
            return False
        if replica.alive():
            return True
        self._replicas.pop(key, None)
        if replica.exit_code() is None:  # vanished without an exit status: its node is going, most likely
            self._lost[pin["node"]] = time.monotonic()
        return False

    def _find(self, key: str, pid: int, host: str, port: int, started_at: float, log: Path) -> Any:
        from llmos.executor._ray_replica import adopt_replica

        if key not in self._replicas:
            replica = adopt_replica(key, pid, host, port, started_at, log)
            if replica is None:
                return None
            self._replicas[key] = replica
        return self._replicas[key]
