"""Ray's nodes as the scheduler's hosts: `hosts_from_ray` (pure, over `ray.nodes()` records) and
`RayHosts` (the shell that asks Ray, at most once a second).

Every alive node with CPUs is a host named by its Ray node id, at its node address, with Ray's
logical CPU count, its memory and its GPUs (count; type from Ray's `accelerator_type:` resource).
A node that joins is offered on the next round; one that dies or is being drained is not.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from llmos.executor._hosts import Cluster, Gpu, Inventory

__all__ = ["RayHosts", "hosts_from_ray"]

_REFRESH_S = 1.0  # how stale the inventory may get: a joining node is offered within this


def hosts_from_ray(nodes: Iterable[Mapping[str, Any]], draining: Iterable[str] = ()) -> Cluster:
    """The cluster as the scheduler sees it, from `ray.nodes()`-shaped records; `draining`: node
    ids Ray is draining (they finish what they run and get nothing new)."""
    leaving = set(draining)
    hosts = []
    for node in nodes:
        resources = node.get("Resources") or {}
        cpus = int(resources.get("CPU", 0))
        if not node.get("Alive") or cpus < 1 or node["NodeID"] in leaving:
            continue
        kinds = [key.split(":", 1)[1] for key in resources if key.startswith("accelerator_type:")]
        gpu_name = kinds[0] if len(kinds) == 1 else "GPU"
        hosts.append(Inventory(
            cores=tuple(range(cpus)), memory_gb=float(resources.get("memory", 0.0)) / 1e9,
            gpus=tuple(Gpu(i, gpu_name, None) for i in range(int(resources.get("GPU", 0)))),
            name=node["NodeID"], address=node.get("NodeManagerAddress", ""), pin=False))
    hosts.sort(key=lambda h: (h.address, h.name))  # a stable order: the policy breaks ties by it
    return Cluster(tuple(hosts), backend="ray")


class RayHosts:
    """The Ray cluster's hosts now; asks Ray at most every `_REFRESH_S` seconds."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._at = -float("inf")
        self._cluster = Cluster((), backend="ray")
        self._drain_api = True  # this Ray answers which nodes it drains

    def __call__(self) -> Cluster:
        now = self._clock()
        if now - self._at >= _REFRESH_S:
            import ray

            now_cluster = hosts_from_ray(ray.nodes(), self._draining())
            if now_cluster != self._cluster:  # the same object while nothing changes: its scheduler index is kept
                self._cluster = now_cluster
            self._at = now
        return self._cluster

    def _draining(self) -> list[str]:
        """Ids of the nodes Ray is draining (`ray drain-node`, the autoscaler, KubeRay scale-down),
        from the GCS that `ray.nodes()` reads. Ray has no public call for it in 2.x: the private
        one is used while it exists, and a Ray without it simply reports no draining nodes."""
        if not self._drain_api:
            return []
        try:
            from ray._private.state import state

            return list(state.get_draining_nodes())
        except (ImportError, AttributeError):
            self._drain_api = False
            return []
