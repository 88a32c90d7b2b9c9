"""What a submitted spec asks of the machines, checked before anything is stored.

`load_submission` reads a spec file on the client (paths resolve against the file, errors are
those of `llmos spec validate`); `validate_submission` checks the mapping again on the server;
`request_of` (the kinds table's) turns a job into workers x {cpus, memory, gpus}; `check_fits`
rejects what the cluster could never hold, with the numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmos.control._errors import Rejected
from llmos.errors import SpecError
from llmos.executor import Cluster, Inventory, Request, kind_of, parse_spec

__all__ = ["Request", "check_fits", "load_submission", "request_of", "spec_project", "split_project",
           "validate_submission"]


def load_submission(path: Path, overrides: list[str] | None = None) -> BaseModel:
    """Read and validate a spec file as `llmos spec validate` does (plus `kind: command`)."""
    import yaml

    from llmos.spec import load_job, parse_command

    raw = None
    if path.is_file():
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            raw = None  # load_job reports the syntax error with its position
    if isinstance(raw, dict) and raw.get("kind") == "command":
        return parse_command(split_project(raw)[0], overrides, source=str(path))
    # `project:` is the submission's (see `spec_project`); the server checks again against its own mode
    return ready(load_job(path, overrides, without=("project",)), cluster=True)


def spec_project(path: Path) -> str | None:
    """The project a spec file names with a top-level `project:` (None: it names none)."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None  # load_submission reports it
    return split_project(raw)[1]


def validate_submission(raw: dict[str, Any], overrides: list[str] | None = None, *, cluster: bool = False) -> BaseModel:
    """Validate a spec mapping sent to the API (relative paths resolve against the daemon's folder)."""
    return ready(parse_spec(raw, overrides), cluster=cluster)


def split_project(spec: Any) -> tuple[Any, str | None]:
    """A submitted mapping without its top-level `project:` (which project the job or deployment
    goes into: a submission key, not a field of any kind's spec), and that project."""
    if not isinstance(spec, dict) or "project" not in spec:
        return spec, None
    rest = {k: v for k, v in spec.items() if k != "project"}
    project = spec["project"]
    if not isinstance(project, str) or not project.strip():
        raise SpecError("bad submission:", problems=[("project", f"expected a project name, got {project!r}")],
                        hint="List your projects with: llmos projects ls")
    return rest, project.strip()


def request_of(job: BaseModel) -> Request:
    return kind_of(job).request(job)


def check_fits(request: Request, cluster: Cluster | Inventory) -> None:
    """Reject a job the cluster can never hold, naming what it asks and what there is: each worker
    must fit on some host, a same-node gang on one host, and the whole gang on all of them."""
    hosts = cluster.hosts if isinstance(cluster, Cluster) else (cluster,)
    one = len(hosts) == 1
    where = "the control plane" if one else f"the cluster's {len(hosts)} nodes"
    total_cpus, total_mem, total_gpus = (request.workers * request.cpus, request.workers * request.memory_gb,
                                         request.workers * request.gpus)
    has = "has" if one else "have"
    short = []
    if total_cpus > sum(len(h.cores) for h in hosts):
        short.append(f"{total_cpus} CPUs ({request.workers} worker(s) x {request.cpus}) but {where} {has} "
                     f"{sum(len(h.cores) for h in hosts)}")
    if total_mem > sum(h.memory_gb for h in hosts) + 1e-9:
        short.append(f"{total_mem:g} GB of memory but {'it' if one else where} {has} "
                     f"{sum(h.memory_gb for h in hosts):.1f} GB")
    if total_gpus > sum(len(h.gpus) for h in hosts):
        short.append(f"{total_gpus} GPUs but {'it' if one else where} {has} {sum(len(h.gpus) for h in hosts)}")
    if not short and not one:
        gang = request if request.same_node else Request(1, request.cpus, request.memory_gb, request.gpus)
        if not any(_holds(h, gang) for h in hosts):
            what = "the whole gang" if request.same_node else "one worker"
            short.append(f"{what} ({gang.workers} x {gang.cpus} CPUs, {gang.memory_gb:g} GB, {gang.gpus} GPUs) "
                         "but no single node has that much")
    if short:
        raise Rejected("the job can never run on this " + ("machine" if one else "cluster") + ": it asks for "
                       + "; ".join(short) + ".",
                       hint="Ask for less (resources.cpus; for training resources.procs, resources.nodes, "
                            "resources.cpus_per_proc, resources.gpus_per_proc), or see what there is with: llmos top")


def _holds(host: Any, gang: Request) -> bool:
    return (len(host.cores) >= gang.workers * gang.cpus and host.memory_gb + 1e-9 >= gang.workers * gang.memory_gb
            and len(host.gpus) >= gang.workers * gang.gpus)


def ready(job: BaseModel, *, cluster: bool) -> BaseModel:
    """The job as the control plane will queue it, or every reason it cannot run under it."""
    kind = kind_of(job)  # refuses kinds that are not in the table
    if kind.name == "compress":
        from llmos.control._submit_compress import ready_to_queue

        return ready_to_queue(job)  # type: ignore[arg-type]
    res = getattr(job, "resources", None)
    if res is None or not hasattr(res, "nodes"):
        return job
    problems = []
    if res.nodes != 1 and not cluster:
        problems.append(("resources.nodes", "this control plane runs jobs on one machine; set resources.nodes=1, "
                                            "or start it on a Ray cluster (llmos up --ray HEAD:6379, "
                                            "docs/cluster.md)"))
    if res.device == "cuda" and res.gpus_per_proc == 0:
        problems.append(("resources.gpus_per_proc", "resources.device is cuda but no GPU is requested; "
                                                    "set resources.gpus_per_proc=1"))
    if problems:
        raise SpecError("spec cannot run under the control plane:", problems=problems)
    return job
