"""Start a job's entrypoint on this machine: `python -m llmos.run JOB.json`, or `torchrun` with
one process per worker when the job asks for several. Signals are passed on so that a SIGTERM
to the launcher checkpoints the run instead of killing it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmos.errors import LlmosError
from llmos.run import _runfile as runfile
from llmos.run._signals import EXIT_PREEMPTED

if TYPE_CHECKING:
    from llmos.spec import TrainJob

__all__ = ["Launch", "launch", "prepare_run_dir", "worker_command"]


@dataclass(frozen=True)
class Launch:
    exit_code: int
    run_dir: Path

    @property
    def summary(self) -> dict[str, Any] | None:
        path = self.run_dir / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else None


def prepare_run_dir(job: TrainJob, *, fresh: bool = False) -> TrainJob:
    """Resolve the job's output folder and write the job file there; returns the resolved job.

    With several nodes the folder must be on storage they share, as every worker resumes from it.
    A folder holding an unfinished run is resumed; one holding a finished run is kept and
    refused unless `fresh`, which moves it aside (nothing stored is deleted).
    """
    from llmos.paths import runs_dir

    run_dir = Path(job.output or runs_dir() / job.name).expanduser().resolve()
    job = job.model_copy(update={"output": run_dir})
    if job.resources.node_rank == 0:  # node 0 owns the folder; other nodes only add their job file
        status = runfile.read(run_dir).get("status")
        if status == "finished" and not fresh:
            raise LlmosError(f"{run_dir} holds a finished run.",
                             hint="Start a new one with --fresh (the old folder is kept beside it) "
                                  "or choose another folder with output=PATH or name=NEW_NAME.")
        if (fresh or not job.checkpoint.resume) and run_dir.exists() and any(run_dir.iterdir()):
            run_dir.rename(run_dir.with_name(f"{run_dir.name}.{time.strftime('%Y%m%d-%H%M%S')}"))
        run_dir.mkdir(parents=True, exist_ok=True)
        # From here on, "preempted" can only come from the attempt about to start.
        runfile.update(run_dir, status="launching")
    run_dir.mkdir(parents=True, exist_ok=True)
    job_file(job).write_text(job.model_dump_json(indent=2))
    return job


def job_file(job: TrainJob) -> Path:
    """The resolved job file in the run folder; one per node, since nodes may share the folder."""
    rank = job.resources.node_rank
    return Path(job.output) / ("job.json" if rank == 0 else f"job-node{rank}.json")


def worker_command(job: TrainJob, job_file: Path) -> list[str]:
    res = job.resources
    entry = ["-m", "llmos.run", str(job_file)]
    if res.procs * res.nodes == 1:
        return [sys.executable, *entry]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(res.procs)]
    if res.nodes == 1:
        cmd += ["--standalone"]
    else:
        if not res.rdzv_endpoint:
            raise LlmosError("resources.nodes > 1 needs resources.rdzv_endpoint (host:port of node 0, reachable "
                             "from every node) when each node starts its own `llmos train`.",
                             hint="Add resources.rdzv_endpoint=HOST:PORT, or submit the job to a control plane "
                                  "on Ray (llmos up --ray HEAD:6379), which places the nodes itself.")
        host, _, port = res.rdzv_endpoint.rpartition(":")
        cmd += ["--nnodes", str(res.nodes), "--node-rank", str(res.node_rank),
                "--master-addr", host, "--master-port", port]
    return cmd + entry


def launch(job: TrainJob, *, fresh: bool = False, env: dict[str, str] | None = None,
           say: Callable[[str], None] | None = None) -> Launch:
    """Run the job in the foreground until it ends; returns its exit code (75 when preempted)."""
    with _exclusive(job):
        job = prepare_run_dir(job, fresh=fresh)
        run_dir = Path(job.output)  # type: ignore[arg-type]
        child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        child_env.update(_cpu_env(job, child_env, say or _say))
        code = _run_child(worker_command(job, job_file(job)), child_env)
    if code != 0 and runfile.read(run_dir).get("status") == "preempted":
        code = EXIT_PREEMPTED
    return Launch(exit_code=code, run_dir=run_dir)


def _cpu_env(job: TrainJob, env: dict[str, str], say: Callable[[str], None]) -> dict[str, str]:
    """The workers' threading, decided once here by the one rule (llmos._threads): OpenMP waiting,
    and threads per worker unless the spec or the user's OMP_NUM_THREADS says; torchrun would
    otherwise give each worker one thread. Beside a daemon's jobs the workers keep to free cores."""
    from llmos._threads import openmp_env, plan_threads, usable_cores

    extra = openmp_env(env)
    if "OMP_NUM_THREADS" in env or job.train.num_threads:
        return extra  # the user's choice stands
    plan = plan_threads(job.resources.cpus_per_proc, workers=job.resources.procs, environ=env,
                        field="resources.cpus_per_proc")
    if plan.beside_daemon:
        say(f"llmos train: {plan.why}: {plan.threads} thread(s) per worker")
    # Set here, the count is llmos's own (the workers may shrink it while their cores are busy).
    extra["OMP_NUM_THREADS"] = str(plan.threads)
    extra["LLMOS_WORKER_CORES"] = ";".join([",".join(map(str, plan.cores or usable_cores()))] * job.resources.procs)
    return extra


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _exclusive(job: TrainJob) -> Iterator[None]:
    """One launcher per run folder on this machine: a second `llmos train` on it is refused."""
    from llmos.paths import runs_dir

    if job.resources.node_rank != 0:  # nodes > 0 join node 0's run
        yield
        return
    run_dir = Path(job.output or runs_dir() / job.name).expanduser().resolve()
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f".{run_dir.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LlmosError(f"another llmos process is running the job in {run_dir}.",
                             hint="Wait for it to end (or stop it), or give this job another output=PATH.") from None
        yield


def _run_child(command: list[str], env: dict[str, str]) -> int:
    from llmos import _forkserver

    # Forked from a warm process where one runs for this environment (the second run on starts
    # one: llmos._forkserver.attach), else a new process; either way with this terminal.
    proc: subprocess.Popen | _forkserver.Attached | None = _forkserver.attach(command, env, cwd=Path.cwd())
    if proc is None:
        proc = subprocess.Popen(command, env=env)
    return _forkserver.wait_foreground(proc)
