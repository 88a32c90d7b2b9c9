"""Start a job's entrypoint on this machine: `python -m llmos.run JOB.json`, or `torchrun` with
one process per worker when the job asks for several. Signals are passed on so that a SIGTERM
to the launcher checkpoints the run instead of killing it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.errors import LlmosError
from llmos.run._signals import EXIT_PREEMPTED

__all__ = ["Launch", "launch", "prepare_run_dir", "worker_command"]


@dataclass(frozen=True)
class Launch:
    exit_code: int
    run_dir: Path

    @property
    def summary(self) -> dict[str, Any] | None:
        path = self.run_dir / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else None


def prepare_run_dir(job: Any, *, fresh: bool = False) -> Any:
    """Resolve the job's output folder and write the job file there; returns the resolved job.

    With several nodes the folder must be on storage they share, as every worker resumes from it.
    A folder holding an unfinished run is resumed; one holding a finished run is kept and
    refused unless `fresh`, which moves it aside (nothing stored is deleted).
    """
    from llmos.paths import runs_dir

    run_dir = Path(job.output or runs_dir() / job.name).expanduser().resolve()
    job = job.model_copy(update={"output": run_dir})
    if job.resources.node_rank == 0:  # node 0 owns the folder; other nodes only add their job file
        status = _status(run_dir)
        if status == "finished" and not fresh:
            raise LlmosError(f"{run_dir} holds a finished run.",
                             hint="Start a new one with --fresh (the old folder is kept beside it) "
                                  "or choose another folder with output=PATH or name=NEW_NAME.")
        if (fresh or not job.checkpoint.resume) and run_dir.exists() and any(run_dir.iterdir()):
            run_dir.rename(run_dir.with_name(f"{run_dir.name}.{time.strftime('%Y%m%d-%H%M%S')}"))
        run_dir.mkdir(parents=True, exist_ok=True)
        # From here on, "preempted" can only come from the attempt about to start.
        _set_status(run_dir, "launching")
    run_dir.mkdir(parents=True, exist_ok=True)
    job_file(job).write_text(job.model_dump_json(indent=2))
    return job


def job_file(job: Any) -> Path:
    """The resolved job file in the run folder; one per node, since nodes may share the folder."""
    rank = job.resources.node_rank
    return Path(job.output) / ("job.json" if rank == 0 else f"job-node{rank}.json")


def worker_command(job: Any, job_file: Path) -> list[str]:
    res = job.resources
    entry = ["-m", "llmos.run", str(job_file)]
    if res.procs * res.nodes == 1:
        return [sys.executable, *entry]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(res.procs)]
    if res.nodes == 1:
        cmd += ["--standalone"]
    else:
        host, _, port = res.rdzv_endpoint.rpartition(":")
        cmd += ["--nnodes", str(res.nodes), "--node-rank", str(res.node_rank),
                "--master-addr", host, "--master-port", port]
    return cmd + entry


def launch(job: Any, *, fresh: bool = False, env: dict[str, str] | None = None) -> Launch:
    """Run the job in the foreground until it ends; returns its exit code (75 when preempted)."""
    job = prepare_run_dir(job, fresh=fresh)
    run_dir = Path(job.output)
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(worker_command(job, job_file(job)), env=child_env)

    def forward(signum: int, _frame: Any) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    # SIGTERM comes from a scheduler to this process only: pass it on (torchrun passes it to its
    # workers). Ctrl-C reaches the whole foreground process group, the child included.
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code != 0 and _status(run_dir) == "preempted":
        code = EXIT_PREEMPTED
    return Launch(exit_code=code, run_dir=run_dir)


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "run.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def _set_status(run_dir: Path, status: str) -> None:
    path = run_dir / "run.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**data, "status": status}, indent=2))
    os.replace(tmp, path)
