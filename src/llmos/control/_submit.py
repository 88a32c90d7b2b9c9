"""What a submitted spec asks of the machine, checked before anything is stored.

`load_submission` reads a spec file on the client (paths resolve against the file, errors are
those of `llmos spec validate`); `validate_submission` checks the mapping again on the server;
`request_of` turns a job into workers x {cpus, memory, gpus}; `check_fits` rejects what this
machine could never hold, with the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmos.control._command import CommandJob, parse_command
from llmos.control._errors import Rejected
from llmos.control._inventory import Inventory
from llmos.errors import SpecError

__all__ = ["Request", "check_fits", "load_submission", "request_of", "validate_submission"]


@dataclass(frozen=True)
class Request:
    workers: int
    cpus: int  # per worker
    memory_gb: float  # per worker
    gpus: int  # per worker


def load_submission(path: Path, overrides: list[str] | None = None) -> BaseModel:
    """Read and validate a spec file as `llmos spec validate` does (plus `kind: command`)."""
    import yaml

    from llmos.spec import load_job

    raw = None
    if path.is_file():
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            raw = None  # load_job reports the syntax error with its position
    if isinstance(raw, dict) and raw.get("kind") == "command":
        return parse_command(raw, overrides, source=str(path))
    job = load_job(path, overrides)
    return _local_only(job)


def validate_submission(raw: dict[str, Any], overrides: list[str] | None = None) -> BaseModel:
    """Validate a spec mapping sent to the API (relative paths resolve against the daemon's folder)."""
    from llmos.spec import parse_job

    if not isinstance(raw, dict):
        raise SpecError("the spec must be a mapping (a JSON object).")
    if raw.get("kind") == "command":
        return parse_command(raw, overrides, source="spec")
    job = parse_job(raw, overrides, source="spec")
    return _local_only(job)


# What the executor can run: `python -m llmos.run` runs training and compression; serve specs are deployments.
SUBMITTABLE = ("train", "compress", "serve", "command")


def request_of(job: BaseModel) -> Request:
    if isinstance(job, CommandJob):
        r = job.resources
        return Request(1, r.cpus, r.memory_gb, r.gpus)
    res = getattr(job, "resources", None)
    if res is not None and hasattr(res, "procs"):  # train: workers x resources per worker
        return Request(res.procs, res.cpus_per_proc or 1, res.memory_gb or 0.0, res.gpus_per_proc)
    if res is not None and hasattr(res, "cpus"):  # serve (per replica) and other one-process kinds
        return Request(1, res.cpus, getattr(res, "memory_gb", None) or 0.0, getattr(res, "gpus", 0))
    return Request(1, 1, 0.0, 0)


def check_fits(request: Request, inventory: Inventory) -> None:
    """Reject a job this machine can never hold, naming what it asks and what there is."""
    total_cpus, total_mem, total_gpus = (request.workers * request.cpus, request.workers * request.memory_gb,
                                         request.workers * request.gpus)
    short = []
    if total_cpus > len(inventory.cores):
        short.append(f"{total_cpus} CPUs ({request.workers} worker(s) x {request.cpus}) but the control plane "
                     f"has {len(inventory.cores)}")
    if total_mem > inventory.memory_gb + 1e-9:
        short.append(f"{total_mem:g} GB of memory but it has {inventory.memory_gb:.1f} GB")
    if total_gpus > len(inventory.gpus):
        short.append(f"{total_gpus} GPUs but it has {len(inventory.gpus)}")
    if short:
        raise Rejected("the job can never run on this machine: it asks for " + "; ".join(short) + ".",
                       hint="Ask for less (resources.cpus; for training resources.procs, resources.cpus_per_proc, "
                            "resources.gpus_per_proc), or see what there is with: llmos status")


def _local_only(job: BaseModel) -> BaseModel:
    kind = getattr(job, "kind", None)
    if kind not in SUBMITTABLE:
        raise SpecError(f"a kind: {kind} job cannot be submitted to the control plane yet.",
                        problems=[("kind", f"submit one of: {', '.join(SUBMITTABLE)}")],
                        hint=f"Run it in the foreground with: llmos {kind} ...")
    if kind == "compress":
        from llmos.control._submit_compress import ready_to_queue

        return ready_to_queue(job)  # type: ignore[arg-type]
    res = getattr(job, "resources", None)
    if res is None or not hasattr(res, "nodes"):
        return job
    problems = []
    if res.nodes != 1:
        problems.append(("resources.nodes", "the control plane runs jobs on this machine; set resources.nodes=1 "
                                            "(start multi-node runs with `llmos train` on each node)"))
    if res.device == "cuda" and res.gpus_per_proc == 0:
        problems.append(("resources.gpus_per_proc", "resources.device is cuda but no GPU is requested; "
                                                    "set resources.gpus_per_proc=1"))
    if problems:
        raise SpecError("spec cannot run under the control plane:", problems=problems)
    return job
