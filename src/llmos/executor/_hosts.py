"""What the executors offer the scheduler: hosts (cores, memory, GPUs) and the cluster they form.

A local control plane has one host, this machine (`NODE`); on Ray every alive node is a host,
named by its Ray node id. Core ids are real on a local host (the executor pins workers to them);
on Ray they only count CPUs (`pin` False): Ray's own accounting keeps workers apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

__all__ = ["NODE", "Cluster", "Gpu", "Inventory"]

NODE = "local"  # the one node of the local executor


@dataclass(frozen=True)
class Gpu:
    index: int  # as nvidia-smi and CUDA_VISIBLE_DEVICES number it
    name: str
    memory_gb: float | None  # None: the GPU does not report it (nvidia-smi prints [N/A])


@dataclass(frozen=True)
class Inventory:
    """One host: the core ids jobs may be pinned to, memory and GPUs, after the configured overrides."""

    cores: tuple[int, ...]
    memory_gb: float
    gpus: tuple[Gpu, ...] = ()
    name: str = NODE  # the scheduler's node name
    address: str = "127.0.0.1"  # where other hosts reach it (DDP rendezvous, replicas)
    pin: bool = True  # workers are pinned to `cores` (False on Ray: the ids only count CPUs)

    def node(self):  # -> llmos.scheduler.Node
        from llmos.scheduler import Node

        gpu_type = self.gpus[0].name if self.gpus and all(g.name == self.gpus[0].name for g in self.gpus) else ""
        return Node(self.name, float(len(self.cores)), self.memory_gb, len(self.gpus), gpu_type=gpu_type)

    def describe(self) -> dict:
        return {"name": self.name, "address": self.address, "cpus": len(self.cores), "cores": list(self.cores),
                "memory_gb": round(self.memory_gb, 2),
                "gpus": [{"index": g.index, "name": g.name, "memory_gb": g.memory_gb} for g in self.gpus]}


@dataclass(frozen=True)
class Cluster:
    """Every host jobs may run on now. One host for the local executor; Ray's alive nodes on Ray."""

    hosts: tuple[Inventory, ...]
    backend: str = "local"

    @staticmethod
    def of(host: Inventory) -> Cluster:
        return Cluster((host,))

    def host(self, name: str) -> Inventory | None:
        return next((h for h in self.hosts if h.name == name), None)

    def nodes(self) -> list:  # -> list[llmos.scheduler.Node]
        return [h.node() for h in self.hosts]

    @cached_property
    def for_scheduler(self):  # -> llmos.scheduler.Cluster
        """The scheduler's index of these hosts, built once: it also remembers which job shapes can
        ever fit, so a round over an unchanged inventory does not work that out again."""
        from llmos.scheduler import Cluster as Indexed

        return Indexed(self.nodes())

    def describe(self) -> dict:
        """Totals (what one host used to report, so old clients still read it) and each host."""
        return {"backend": self.backend, "cpus": sum(len(h.cores) for h in self.hosts),
                "cores": [c for h in self.hosts for c in h.cores] if len(self.hosts) == 1 else [],
                "memory_gb": round(sum(h.memory_gb for h in self.hosts), 2),
                "gpus": [g for h in self.hosts for g in h.describe()["gpus"]],
                "nodes": [h.describe() for h in self.hosts]}
