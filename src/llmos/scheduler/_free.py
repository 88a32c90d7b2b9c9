"""A round's working copy of free capacity, with nodes bucketed by their number of idle GPUs.

Placement looks for the fullest node that still fits (best fit packs GPUs), so nodes are
indexed by free GPU count: a search walks a handful of buckets instead of all 1,000 nodes.
`holds` are amounts set aside on a node for the job backfill must not delay.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmos.scheduler._occupancy import Occupancy
from llmos.scheduler._resources import EPS
from llmos.scheduler._types import Node

__all__ = ["FreeView"]

_MANY = 1 << 30  # workers a node can host when the worker asks for nothing


class FreeView:
    __slots__ = ("_largest", "buckets", "cpus", "free_cpus", "free_gpus", "free_mem", "gpus", "holds", "mem", "nodes")

    def __init__(self, nodes: Sequence[Node], cpus: list[float], mem: list[float],
                 gpus: list[tuple[int, ...]], buckets: list[set[int]], holds: dict[int, tuple],
                 totals: tuple[float, float, int] | None = None) -> None:
        self.nodes = nodes
        self.cpus = cpus
        self.mem = mem
        self.gpus = gpus
        self.buckets = buckets
        self.holds = holds
        if totals is None:
            totals = (sum(cpus), sum(mem), sum(k * len(b) for k, b in enumerate(buckets)))
        self.free_cpus, self.free_mem, self.free_gpus = totals
        self._largest: int | None = None  # largest_gap(), until a node's idle GPUs change

    @staticmethod
    def of(occupancy: Occupancy) -> FreeView:
        """A working copy of `occupancy`'s free capacity; each bucket is filled in node order."""
        buckets = [set(nodes) for nodes in occupancy.idle]
        return FreeView(occupancy.cluster.nodes, occupancy.cpus.copy(), occupancy.mem.copy(), occupancy.gpus.copy(),
                        buckets, {})

    def clone(self) -> FreeView:
        return FreeView(self.nodes, self.cpus.copy(), self.mem.copy(), self.gpus.copy(),
                        [b.copy() for b in self.buckets], dict(self.holds),
                        (self.free_cpus, self.free_mem, self.free_gpus))

    def hostable(self, i: int, gpus: int, cpus: float, mem: float, gpu_type: str | None,
                 respect_holds: bool) -> int:
        """How many workers of this shape node `i` can take now."""
        if gpu_type and self.nodes[i].gpu_type != gpu_type:
            return 0
        fg, fc, fm = len(self.gpus[i]), self.cpus[i], self.mem[i]
        if respect_holds and i in self.holds:
            hc, hm, hg = self.holds[i]
            fg, fc, fm = fg - hg, fc - hc, fm - hm
        k = _MANY if gpus == 0 else fg // gpus
        if cpus > 0:
            k = min(k, int((fc + EPS) // cpus))
        if mem > 0:
            k = min(k, int((fm + EPS) // mem))
        return max(k, 0)

    def take(self, i: int, cpus: float, mem: float, gpu_indices: tuple[int, ...]) -> None:
        self.cpus[i] -= cpus
        self.mem[i] -= mem
        self.free_cpus -= cpus
        self.free_mem -= mem
        if gpu_indices:
            before = self.gpus[i]
            taken = set(gpu_indices)
            after = tuple(g for g in before if g not in taken)
            self._rebucket(i, before, after)

    def give(self, i: int, cpus: float, mem: float, gpu_indices: tuple[int, ...]) -> None:
        self.cpus[i] += cpus
        self.mem[i] += mem
        self.free_cpus += cpus
        self.free_mem += mem
        if gpu_indices:
            before = self.gpus[i]
            self._rebucket(i, before, tuple(sorted(before + tuple(gpu_indices))))

    def unheld_gpus(self) -> int:
        """Idle GPUs that the holds leave to anyone."""
        held = sum(min(len(self.gpus[i]), h[2]) for i, h in self.holds.items())
        return self.free_gpus - held

    def largest_gap(self) -> int:
        """The most idle GPUs on any one node (asked of most jobs a round looks at)."""
        if self._largest is None:
            buckets = self.buckets
            self._largest = next((k for k in range(len(buckets) - 1, 0, -1) if buckets[k]), 0)
        return self._largest

    def hold(self, i: int, cpus: float, mem: float, gpus: int) -> None:
        hc, hm, hg = self.holds.get(i, (0.0, 0.0, 0))
        self.holds[i] = (hc + cpus, hm + mem, hg + gpus)

    def _rebucket(self, i: int, before: tuple[int, ...], after: tuple[int, ...]) -> None:
        self.buckets[len(before)].discard(i)
        if len(after) >= len(self.buckets):
            self.buckets.extend(set() for _ in range(len(after) + 1 - len(self.buckets)))
        self.buckets[len(after)].add(i)
        self._largest = None
        self.gpus[i] = after
        self.free_gpus += len(after) - len(before)
