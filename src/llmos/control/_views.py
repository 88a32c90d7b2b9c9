"""Stored rows as the JSON the API returns (and the CLI renders)."""

from __future__ import annotations

import json
from typing import Any

from llmos.scheduler import PRIORITY_CLASSES

__all__ = ["JOB_COLUMNS", "job_view"]

_CLASS_NAMES = {rank: name for name, rank in PRIORITY_CLASSES.items()}
JOB_COLUMNS = ("id", "name", "kind", "owner", "project", "priority", "state", "workers", "cpus", "memory_gb", "gpus",
               "max_retries", "attempt", "failures", "submit_s", "updated_s", "not_before_s", "placement", "reason",
               "run_dir", "exit_code")


def job_view(row: Any) -> dict[str, Any]:
    view = {col: getattr(row, col) for col in JOB_COLUMNS}
    view["priority"] = _CLASS_NAMES.get(row.priority, str(row.priority))
    placement = json.loads(row.placement) if row.placement else None
    view["placement"] = None if placement is None else {
        "cores": [c for w in placement["workers"] for c in w["cores"]],
        "gpus": [g for w in placement["workers"] for g in w["gpus"]],
        # cluster mode: each worker's node (Ray node id) and address; absent on one machine
        **({"nodes": [w["node"] for w in placement["workers"]],
            "addresses": [w["address"] for w in placement["workers"]]}
           if any(w.get("node", "local") != "local" for w in placement["workers"]) else {})}
    return view
