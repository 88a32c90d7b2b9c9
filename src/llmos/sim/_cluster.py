"""Cluster and owners files.

Cluster header: node,cpus,memory_gb,gpus,gpu_type. Owners header: owner, plus any of weight,
guarantee_gpus, cap_gpus, guarantee_cpus, cap_cpus, guarantee_memory_gb, cap_memory_gb
(an empty cell leaves that limit unset).
"""

from __future__ import annotations

from pathlib import Path

from llmos.scheduler import Node, Owner, Quota
from llmos.sim._csv import Row, read_rows
from llmos.sim._errors import ClusterError

__all__ = ["CLUSTER_COLUMNS", "load_cluster", "load_owners"]

CLUSTER_COLUMNS = ("node", "cpus", "memory_gb", "gpus", "gpu_type")


def load_cluster(path: str | Path) -> list[Node]:
    nodes: list[Node] = []
    seen: dict[str, int] = {}
    for row in read_rows(Path(path), CLUSTER_COLUMNS, "cluster", ClusterError):
        name = row.text("node")
        values = (row.number("cpus"), row.number("memory_gb"), row.integer("gpus"), row.text("gpu_type", ""))
        if name in seen:
            row.problem("node", f"{name!r} already used on row {seen[name]}")
        elif row.ok:
            seen[name] = row.line
            nodes.append(Node(name, *values))
    if not nodes:
        raise ClusterError(f"cluster file {str(path)!r} has no nodes.", hint="Add one row per node under the header.")
    return nodes


def load_owners(path: str | Path) -> list[Owner]:
    owners: list[Owner] = []
    for row in read_rows(Path(path), ("owner",), "owners", ClusterError):
        values = (row.text("owner"), _weight(row), _quota(row, "guarantee"), _quota(row, "cap"))
        if row.ok:
            owners.append(Owner(*values))
    return owners


def _weight(row: Row) -> float:
    weight = row.number("weight", 1.0)
    if weight <= 0:
        row.problem("weight", f"must be > 0, got {weight:g}")
        return 1.0
    return weight


def _quota(row: Row, kind: str) -> Quota:
    def limit(resource: str) -> float | None:
        column = f"{kind}_{resource}"
        return row.number(column) if row.has(column) else None

    return Quota(limit("cpus"), limit("memory_gb"), limit("gpus"))
