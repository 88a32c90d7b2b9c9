"""Trace files: one job per row, validated once, every bad cell named by row and column.

Header (required): job_id,submit_s,duration_s,workers,gpus_per_worker,cpus_per_worker,
memory_gb_per_worker,owner,priority,preemptible. Optional: runtime_estimate_s, checkpoint_s,
same_node, gpu_type. Other columns are ignored.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from llmos.scheduler import PRIORITY_CLASSES, Job, Resources
from llmos.sim._csv import Row, read_rows
from llmos.sim._errors import TraceError

__all__ = ["TRACE_COLUMNS", "TraceJob", "load_trace", "write_trace"]

TRACE_COLUMNS = ("job_id", "submit_s", "duration_s", "workers", "gpus_per_worker", "cpus_per_worker",
                 "memory_gb_per_worker", "owner", "priority", "preemptible")
_OPTIONAL = ("runtime_estimate_s", "checkpoint_s", "same_node", "gpu_type")
_CLASS_NAMES = {rank: name for name, rank in PRIORITY_CLASSES.items()}
DEFAULT_CHECKPOINT_S = 60.0  # a preempted job spends this long writing its checkpoint unless told


@dataclass(frozen=True, slots=True)
class TraceJob:
    """A job as submitted (its request) and how long it really runs once started."""

    job: Job
    duration_s: float


def load_trace(path: str | Path) -> list[TraceJob]:
    """Parse and validate a trace CSV, sorted by submit time."""
    jobs: list[TraceJob] = []
    seen: dict[str, int] = {}
    for row in read_rows(Path(path), TRACE_COLUMNS, "trace", TraceError):
        job = _parse(row)
        if job is None:
            continue
        if job.job.job_id in seen:
            row.problem("job_id", f"{job.job.job_id!r} already used on row {seen[job.job.job_id]}")
            continue
        seen[job.job.job_id] = row.line
        jobs.append(job)
    if not jobs:
        raise TraceError(f"trace file {str(path)!r} has no jobs.", hint="Add at least one row under the header.")
    jobs.sort(key=lambda t: (t.job.submit_s, t.job.job_id))
    return jobs


def _parse(row: Row) -> TraceJob | None:
    job_id = row.text("job_id")
    submit_s = row.number("submit_s")
    duration_s = row.number("duration_s")
    workers = row.integer("workers", minimum=1)
    per_worker = Resources(row.number("cpus_per_worker"), row.number("memory_gb_per_worker"),
                           row.integer("gpus_per_worker"))
    owner = row.text("owner")
    priority = _priority(row)
    preemptible = row.flag("preemptible", True)
    estimate = row.number("runtime_estimate_s") if row.has("runtime_estimate_s") else None
    checkpoint_s = row.number("checkpoint_s", DEFAULT_CHECKPOINT_S)
    same_node = row.flag("same_node", False)
    gpu_type = row.text("gpu_type", "") or None
    if not row.ok:
        return None
    job = Job(job_id, owner, submit_s, per_worker, workers, priority, preemptible, same_node, gpu_type,
              estimate, checkpoint_s)
    return TraceJob(job, duration_s)


def _priority(row: Row) -> int:
    raw = row.text("priority", "normal").lower()
    if raw in PRIORITY_CLASSES:
        return PRIORITY_CLASSES[raw]
    if raw.isdigit() and int(raw) in _CLASS_NAMES:
        return int(raw)
    row.problem("priority", f"expected one of {', '.join(PRIORITY_CLASSES)} (or 0-3), got {raw!r}")
    return PRIORITY_CLASSES["normal"]


def write_trace(path: str | Path, jobs: Iterable[TraceJob]) -> None:
    """Write jobs as a trace CSV that `load_trace` reads back unchanged."""
    with Path(path).open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(TRACE_COLUMNS + _OPTIONAL)
        for t in jobs:
            j, w = t.job, t.job.per_worker
            out.writerow([j.job_id, f"{j.submit_s:.3f}", f"{t.duration_s:.3f}", j.workers, int(w.gpus),
                          f"{w.cpus:g}", f"{w.memory_gb:g}", j.owner, _CLASS_NAMES[j.priority],
                          str(j.preemptible).lower(),
                          "" if j.runtime_estimate_s is None else f"{j.runtime_estimate_s:.3f}",
                          f"{j.checkpoint_s:g}", str(j.same_node).lower(), j.gpu_type or ""])
