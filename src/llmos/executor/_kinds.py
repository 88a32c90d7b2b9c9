"""The job kinds: one row each — spec model, entrypoint, resource request, what a stop means.

Submit (validation and the request), the control loop (reading a stored job back, what an exit
means) and both executors (the program to start) read this table; nobody checks a kind by hand.

    kind     spec model   entrypoint                       request                    a stop...
    train    TrainJob     python -m llmos.run JOB.json     procs x nodes workers      checkpoints; the rerun resumes
    compress CompressJob  python -m llmos.run JOB.json     one process, its cores     starts over (no checkpoints)
    command  CommandJob   the spec's own `run` argv        one process                is the program's business
    serve    ServeJob     (a deployment, not a queued job) per replica                drains the replica
    pipeline PipelineJob  (its stages are jobs; llmos.control._pipelines) nothing     cancels its stage jobs
    sweep    SweepJob     (its trials are train jobs; llmos.control._sweeps) nothing  cancels its trial jobs
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmos.errors import SpecError

__all__ = ["KINDS", "Kind", "Program", "Request", "kind_of", "parse_spec"]


@dataclass(frozen=True)
class Request:
    """What a job asks of the machines: `workers` x per-worker resources."""

    workers: int
    cpus: int  # per worker
    memory_gb: float  # per worker
    gpus: int  # per worker
    same_node: bool = True  # False: the gang may span machines


@dataclass(frozen=True)
class Program:
    """What one worker of an attempt runs: argv, extra environment, working folder. `run_dir` is the
    job's output folder when it has one (run folders live on storage every node sees)."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    run_dir: Path | None = None


@dataclass(frozen=True)
class Kind:
    name: str
    queued: bool  # a job in the queue (False: serve specs become deployments)
    restarts: bool  # a stopped or failed attempt reruns from the start (True) or its last checkpoint
    request: Callable[[Any], Request]
    program: Callable[[Any, int, Path], Program]  # (job, cpus per worker, attempt folder) -> one worker's program


def _train_request(job: Any) -> Request:
    r = job.resources
    return Request(r.procs * r.nodes, r.cpus_per_proc or 1, r.memory_gb or 0.0, r.gpus_per_proc,
                   same_node=r.nodes == 1)


def _train_program(job: Any, cpus: int, folder: Path) -> Program:
    from llmos.run import job_file, prepare_run_dir

    # The placement decides the cores per worker; the resolved job file records it (threads).
    resources = job.resources.model_copy(update={"cpus_per_proc": cpus})
    job = prepare_run_dir(job.model_copy(update={"resources": resources}))
    return Program([_python(), "-m", "llmos.run", str(job_file(job))], {}, Path(job.output), Path(job.output))


def _compress_program(job: Any, cpus: int, folder: Path) -> Program:
    from llmos.run.compress import compress_command

    argv, env, cwd = compress_command(job, folder)
    return Program(argv, env, cwd, Path(job.output) if job.output else None)


def _command_program(job: Any, cpus: int, folder: Path) -> Program:
    return Program(list(job.run), dict(job.env), job.cwd or folder, job.output)


def _one_process(job: Any) -> Request:
    r = job.resources
    return Request(1, int(getattr(r, "cpus", 1)), float(getattr(r, "memory_gb", None) or 0.0),
                   int(getattr(r, "gpus", 0)))


def _no_program(job: Any, cpus: int, folder: Path) -> Program:
    raise SpecError("a serve spec is a deployment, not a job to start.", hint="Deploy it with: llmos deploy SPEC")


def _no_request(job: Any) -> Request:
    return Request(0, 0, 0.0, 0)


def _pipeline_program(job: Any, cpus: int, folder: Path) -> Program:
    raise SpecError("a pipeline is not started itself: its stages are jobs.", hint="Submit it with: llmos submit SPEC")


def _sweep_program(job: Any, cpus: int, folder: Path) -> Program:
    raise SpecError("a sweep is not started itself: its trials are jobs.", hint="Submit it with: llmos submit SPEC")


def _python() -> str:
    import sys

    return sys.executable


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("train", queued=True, restarts=False, request=_train_request, program=_train_program),
    Kind("compress", queued=True, restarts=True, request=_one_process, program=_compress_program),
    Kind("command", queued=True, restarts=False, request=_one_process, program=_command_program),
    Kind("serve", queued=False, restarts=True, request=_one_process, program=_no_program),
    Kind("pipeline", queued=False, restarts=False, request=_no_request, program=_pipeline_program),
    Kind("sweep", queued=False, restarts=False, request=_no_request, program=_sweep_program),
)}


def kind_of(job: BaseModel | str) -> Kind:
    name = job if isinstance(job, str) else getattr(job, "kind", None)
    try:
        return KINDS[name]  # type: ignore[index]
    except KeyError:
        raise SpecError(f"a kind: {name} job cannot be submitted to the control plane yet.",
                        problems=[("kind", f"submit one of: {', '.join(KINDS)}")],
                        hint=f"Run it in the foreground with: llmos {name} ...") from None


def parse_spec(raw: Any, overrides: list[str] | None = None, source: str = "spec") -> BaseModel:
    """A submitted mapping as its kind's spec model (every problem at once, with dotted paths)."""
    from llmos.spec import parse_command, parse_job

    if not isinstance(raw, dict):
        raise SpecError("the spec must be a mapping (a JSON object).")
    if raw.get("kind") == "command":  # relative `cwd` resolves against the submitter's folder
        return parse_command(raw, overrides, source=source)
    return parse_job(raw, overrides, source=source)
