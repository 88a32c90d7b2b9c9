"""Capacity being freed: what checkpointing (stopping) jobs will release, not yet claimed."""

from __future__ import annotations

from llmos.scheduler._types import RunningJob, Slot

__all__ = ["Pending"]


class Pending:
    """Per node: CPUs, memory and GPU indices that stopping jobs will give back."""

    __slots__ = ("_index", "nodes")

    def __init__(self, index: dict[str, int]) -> None:
        self._index = index
        self.nodes: dict[int, list] = {}  # node -> [cpus, memory_gb, set of GPU indices]

    def add(self, rj: RunningJob) -> None:
        for slot in rj.placement:
            acc = self.nodes.setdefault(self._index[slot.node], [0.0, 0.0, set()])
            acc[0] += slot.cpus
            acc[1] += slot.memory_gb
            acc[2].update(slot.gpu_indices)

    def take(self, slot: Slot) -> tuple[float, float, tuple[int, ...]]:
        """Take what `slot` can get from here; return the rest, to come from free capacity."""
        acc = self.nodes.get(self._index[slot.node])
        if acc is None:
            return slot.cpus, slot.memory_gb, slot.gpu_indices
        cpus = min(slot.cpus, acc[0])
        mem = min(slot.memory_gb, acc[1])
        acc[0] -= cpus
        acc[1] -= mem
        rest = tuple(g for g in slot.gpu_indices if g not in acc[2])
        acc[2].difference_update(slot.gpu_indices)
        return slot.cpus - cpus, slot.memory_gb - mem, rest
