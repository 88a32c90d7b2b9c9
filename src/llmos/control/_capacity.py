"""Room for a deployment replica, and the queued demand of a replica that found none. Pure.

A replica is placed only on cores, memory and GPUs that no job and no other replica holds: the
machine is never oversubscribed. When there is no room, the replica's demand enters the
scheduler's queue as a job of class `critical` (the class replicas hold), so the policy frees room
for it (by preempting lower classes) the way it does for any job; the deployment then spawns it.
On a cluster (several hosts) a replica goes to a host with room, spread: the one with the fewest
replicas of its deployment first, so that a lost node takes as few of them as possible.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmos.control._inventory import NODE, Inventory
from llmos.scheduler import PRIORITY_CLASSES, Job, Resources

__all__ = ["Held", "Need", "demand_jobs", "held_by", "place_on_hosts", "place_replica", "too_big", "too_big_anywhere"]

EPS = 1e-9  # memory is a float sum: never refuse a replica for one ulp


@dataclass(frozen=True)
class Need:
    """What one replica asks for (its `resources`)."""

    cpus: int
    memory_gb: float = 0.0
    gpus: int = 0


@dataclass(frozen=True)
class Held:
    """What holders (jobs and replicas) take from the inventory; GPUs by physical index."""

    cores: frozenset[int] = frozenset()
    memory_gb: float = 0.0
    gpus: frozenset[int] = frozenset()


def held_by(placements: Iterable[str | None], pins: Iterable[Mapping[str, Any]], node: str = NODE) -> Held:
    """Sum what the stored placements of holding jobs and the pins of live replicas take on host
    `node` (a placement or pin that names no node is on the local host)."""
    cores: set[int] = set()
    gpus: set[int] = set()
    memory_gb = 0.0
    for text in placements:
        for worker in json.loads(text)["workers"] if text else ():
            if worker.get("node", NODE) != node:
                continue
            cores.update(worker["cores"])
            gpus.update(worker["gpus"])
            memory_gb += worker["memory_gb"]
    for pin in pins:
        if pin.get("node", NODE) != node:
            continue
        cores.update(pin["cores"])
        gpus.update(pin["gpus"])
        memory_gb += pin["memory_gb"]
    return Held(frozenset(cores), memory_gb, frozenset(gpus))


def too_big(inventory: Inventory, need: Need) -> str | None:
    """Why a replica could never be placed here, even on an idle machine; None if it could."""
    problems = []
    if need.cpus > len(inventory.cores):
        problems.append(f"{need.cpus} cores but the control plane has {len(inventory.cores)}")
    if need.memory_gb > inventory.memory_gb + EPS:
        problems.append(f"{need.memory_gb:g} GB but the control plane has {inventory.memory_gb:g} GB")
    if need.gpus > len(inventory.gpus):
        problems.append(f"{need.gpus} GPU(s) but the control plane has {len(inventory.gpus)}")
    return "; ".join(problems) or None


def too_big_anywhere(hosts: Sequence[Inventory], need: Need) -> str | None:
    """Why a replica could never be placed on any of these hosts, even idle; None if it could (or
    there is no host now: a node may join)."""
    if not hosts:
        return None
    problems = [too_big(h, need) for h in hosts]
    if any(p is None for p in problems):
        return None
    if len(hosts) == 1:
        return problems[0]
    return (f"{need.cpus} cores, {need.memory_gb:g} GB and {need.gpus} GPU(s) on one node, but no node of the "
            f"cluster's {len(hosts)} has that much (the largest: {max(len(h.cores) for h in hosts)} cores, "
            f"{max(h.memory_gb for h in hosts):.1f} GB, {max(len(h.gpus) for h in hosts)} GPU(s))")


def place_on_hosts(hosts: Sequence[Inventory], held: Mapping[str, Held], need: Need,
                   replicas_on: Mapping[str, int]) -> tuple[Inventory, list[int], list[int]] | str:
    """The host, cores and GPUs for a replica: among the hosts with room, the one with the fewest
    replicas of its deployment (`replicas_on`, by host name), then the most free cores, then the
    hosts' order; or what it waits for."""
    rooms = []
    why = "a node to join the cluster"
    for order, host in enumerate(hosts):
        room = place_replica(host, held.get(host.name, Held()), need)
        if isinstance(room, str):
            why = f"{room} on one node"
            continue
        free = len(host.cores) - len(held.get(host.name, Held()).cores)
        rooms.append(((replicas_on.get(host.name, 0), -free, order), host, room))
    if not rooms:
        return why
    _, host, (cores, gpus) = min(rooms, key=lambda r: r[0])
    return host, cores, gpus


def place_replica(inventory: Inventory, held: Held, need: Need) -> tuple[list[int], list[int]] | str:
    """The lowest free cores and GPUs (physical indices) for a replica, or what it waits for."""
    cores = [c for c in inventory.cores if c not in held.cores]
    gpus = [g.index for g in inventory.gpus if g.index not in held.gpus]
    memory_gb = inventory.memory_gb - held.memory_gb
    short = []
    if len(cores) < need.cpus:
        short.append(f"{need.cpus} free core(s)")
    if memory_gb + EPS < need.memory_gb:
        short.append(f"{need.memory_gb:g} GB of free memory")
    if len(gpus) < need.gpus:
        short.append(f"{need.gpus} free GPU(s)")
    if short:
        return " and ".join(short)
    return cores[:need.cpus], gpus[:need.gpus]


def demand_jobs(prefix: str, owner: str, need: Need, count: int, since_s: float,
                priority: int = PRIORITY_CLASSES["critical"]) -> list[Job]:
    """`count` waiting replicas as queued scheduler jobs: not preemptible, like the replicas they
    become, of the class their project may use (`priority`: critical unless its project's grant
    is lower); `since_s` (when the wait began) is their place in the queue."""
    per_worker = Resources(float(need.cpus), need.memory_gb, float(need.gpus))
    return [Job(f"{prefix}waiting-{i}", owner, since_s, per_worker, priority=priority,
                preemptible=False, same_node=True) for i in range(count)]
