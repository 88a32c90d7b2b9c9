"""`llmos top`'s data: the machine now (each core, memory, each GPU) and which job holds what.

What is held, and how much, is shown to everyone; by whom only to those who may read its project:
a core or GPU held by another project's job or replica names no job but `another project`."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from llmos.control import _nvml
from llmos.control._db import read
from llmos.control._schema import jobs

if TYPE_CHECKING:
    from llmos.control._auth import Caller
    from llmos.control._service import Service

__all__ = ["HIDDEN", "machine_view", "parse_gpu_use"]

HIDDEN = "another project"  # the holder of a core or GPU held by a job or replica the caller may not read


def machine_view(service: Service, caller: Caller | None = None) -> dict[str, Any]:
    """The machine now; holders named only where `caller` (when given) may read their project."""
    import psutil

    from llmos.control._reads import deployment_project

    scope = service.readable(caller)
    with read(service.engine) as conn:
        holding = conn.execute(select(jobs.c.id, jobs.c.name, jobs.c.owner, jobs.c.project, jobs.c.state,
                                      jobs.c.placement, jobs.c.memory_gb, jobs.c.workers)
                               .where(jobs.c.holds.is_(True))).all()
    core_job: dict[int, str] = {}
    gpu_job: dict[int, str] = {}
    held: list[dict[str, Any]] = []
    shown: set[str] = set()  # the ids of the holders the caller may read
    reserved_gb = 0.0
    for row in holding:
        placement = json.loads(row.placement) if row.placement else {"workers": []}
        cores = [c for w in placement["workers"] for c in w["cores"]]
        gpus = [g for w in placement["workers"] for g in w["gpus"]]
        label = str(row.id) if scope is None or row.project in scope else HIDDEN
        core_job.update({c: label for c in cores})
        gpu_job.update({g: label for g in gpus})
        reserved_gb += row.memory_gb * row.workers
        if label != HIDDEN:
            shown.add(label)
            held.append({"id": label, "name": row.name, "owner": row.owner, "state": row.state, "cores": cores,
                         "gpus": gpus, "memory_gb": row.memory_gb * row.workers})
    replicas = service.deployments.holders() if service.deployments is not None else []
    for replica in replicas:
        visible = scope is None or deployment_project(service, replica["name"]) in scope
        label = replica["id"] if visible else HIDDEN
        core_job.update({c: label for c in replica["cores"]})
        gpu_job.update({g: label for g in replica["gpus"]})
        reserved_gb += replica["memory_gb"]
        if visible:
            shown.add(label)
            held.append(replica)
    # Since the previous call (the daemon primes it at start): a live view without a blocking sample.
    percents = psutil.cpu_percent(percpu=True)
    mem = psutil.virtual_memory()
    inv = service.inventory
    return {
        "cores": [{"id": c, "percent": percents[c] if c < len(percents) else None, "job": core_job.get(c)}
                  for c in inv.cores],
        "memory": {"total_gb": round(mem.total / 1e9, 2), "used_gb": round((mem.total - mem.available) / 1e9, 2),
                   "schedulable_gb": round(inv.memory_gb, 2),
                   "reserved_by_jobs_gb": round(reserved_gb, 2)},
        "gpus": [{**g, "job": gpu_job.get(g["index"])} for g in _gpu_use(inv)],
        "jobs": held,
        "nodes": _nodes(service.hosts(), holding, [r for r in replicas if "node" in r], shown),
    }


def _nodes(cluster: Any, holding: list[Any], replicas: list[dict[str, Any]], shown: set[str]) -> list[dict[str, Any]]:
    """Cluster mode: each node's capacity and what the jobs and deployment replicas hold of it (empty on
    one machine); the ids of those in `shown` only, the amounts of all."""
    if cluster.backend == "local":
        return []
    held: dict[str, dict[str, Any]] = {h.name: {"cpus": 0, "memory_gb": 0.0, "gpus": 0, "jobs": []}
                                       for h in cluster.hosts}
    for row in holding:
        for w in (json.loads(row.placement) if row.placement else {"workers": []})["workers"]:
            use = held.get(w.get("node", ""))
            if use is not None:
                use["cpus"] += len(w["cores"])
                use["memory_gb"] += w["memory_gb"]
                use["gpus"] += len(w["gpus"])
                if str(row.id) in shown:
                    use["jobs"].append(str(row.id))
    for replica in replicas:
        use = held.get(replica["node"])
        if use is not None:
            use["cpus"] += len(replica["cores"])
            use["memory_gb"] += replica["memory_gb"]
            use["gpus"] += len(replica["gpus"])
            if replica["id"] in shown:
                use.setdefault("replicas", []).append(replica["id"])
    return [{"name": h.name, "address": h.address, "cpus": len(h.cores), "memory_gb": round(h.memory_gb, 2),
             "gpus": [{"index": g.index, "name": g.name} for g in h.gpus],
             "held": {**held[h.name], "jobs": sorted(set(held[h.name]["jobs"]), key=int)}} for h in cluster.hosts]


def _gpu_use(inv: Any) -> list[dict[str, Any]]:
    gpus = [{"index": g.index, "name": g.name, "memory_gb": g.memory_gb, "util_percent": None, "memory_used_gb": None}
            for g in inv.gpus]
    if not gpus:
        return gpus
    live = _nvml.use(timeout_s=10)
    exe = shutil.which("nvidia-smi")
    if live is None and exe is None:
        return gpus
    try:
        if live is None:  # NVML cannot be loaded here: nvidia-smi's text
            live = parse_gpu_use(subprocess.run(
                [str(exe), "--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, errors="replace", timeout=10).stdout)
    except (OSError, subprocess.SubprocessError):
        return gpus  # a live view: "?" for this refresh rather than an error
    for g in gpus:
        if g["index"] in live:
            g["util_percent"], g["memory_used_gb"] = live[g["index"]]
    return gpus


def parse_gpu_use(text: str) -> dict[int, tuple[float | None, float | None]]:
    """index -> (utilization %, memory used GB) from `nvidia-smi --query-gpu=index,utilization.gpu,memory.used
    --format=csv,noheader,nounits`; a value the GPU does not report ("[N/A]") is None, other lines are ignored."""
    live: dict[int, tuple[float | None, float | None]] = {}
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 3 or not fields[0].isdigit():
            continue
        util, used_mib = _number(fields[1]), _number(fields[2])
        live[int(fields[0])] = (util, None if used_mib is None else round(used_mib / 1024, 2))
    return live


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
