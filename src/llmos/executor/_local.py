"""The local executor: start an attempt under the shim with its placement, watch it, stop it.

Placement is enforced in three layers: the shim pins itself (and so everything it starts) to the
job's cores; `CUDA_VISIBLE_DEVICES` shows only the job's GPUs; OMP/MKL thread counts match the
cores per worker. Under the control plane each worker of a training job further pins itself to
its own cores and writes its own log (`LLMOS_WORKER_CORES`, `LLMOS_WORKER_LOGS`, read by
`python -m llmos.run`). A process is identified by pid and start time, so a pid reused after a
restart is never mistaken for the job's.

Every attempt starts with the daemon's environment less its secrets (`job_environ`). With an
`isolation` of `users` or `sandbox` the shim also isolates it from the control plane (`_jobuser`,
`_sandbox`): the job's project (`placement["project"]`) picks the user it runs as.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmos.executor._base import Exit, attempt_dir, exit_record
from llmos.executor._kinds import kind_of
from llmos.executor._sandbox import job_environ

__all__ = ["LocalExecutor", "Proc", "alive", "isolated"]

_SHIM = Path(__file__).with_name("_shim.py")


@dataclass(frozen=True)
class Proc:
    pid: int
    create_time: float
    warm: bool = False  # forked from a fork server (llmos._forkserver), not a new Python

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> Proc:
        return Proc(**json.loads(text))


class LocalExecutor:
    """Attempts as process trees on this machine: a shim (pinned to the job's cores, recording the
    exit) around the kind's program, or `torchrun --standalone` over it for several workers."""

    backend = "local"

    def __init__(self, isolation: str = "trusted") -> None:
        self._children: dict[int, subprocess.Popen] = {}  # the attempts this daemon started
        self.isolation = isolation  # llmos.control._isolation's mode: users and sandbox isolate

    def attempt_dir(self, job_id: int, attempt: int) -> Path:
        return attempt_dir(job_id, attempt)

    def launch(self, job_id: int, attempt: int, job: BaseModel, placement: dict[str, Any]) -> str:
        """Start attempt `attempt` of `job` on `placement`; returns its handle (JSON). Raises
        LlmosError for a job that cannot start."""
        folder = attempt_dir(job_id, attempt)
        folder.mkdir(parents=True, exist_ok=True)
        workers = placement["workers"]
        output = getattr(job, "output", None)
        if self.isolation == "users" and output is not None:  # the daemon writes the job file there next
            from llmos.executor._jobuser import reclaim

            reclaim(Path(output), placement.get("project") or "default")
        program = kind_of(job).program(job, len(workers[0]["cores"]), folder)
        command, env, cwd = program.argv, program.env, program.cwd
        if len(workers) > 1:  # one process per worker on this machine, rendezvous on loopback
            command = [command[0], "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                       str(len(workers)), *command[1:]]
        cores = [c for w in workers for c in w["cores"]]
        gpus = [g for w in workers for g in w["gpus"]]
        threads = str(len(workers[0]["cores"]))
        sandbox = []
        if self.isolation in ("users", "sandbox"):  # the shim builds it: the project picks the user
            from llmos.executor._jobuser import attempt_sandbox

            plan = attempt_sandbox(self.isolation, placement.get("project") or "default", folder, program.run_dir)
            sandbox, env = [plan.to_json()], {**plan.extra, **env}
        # The placement holds nvidia-smi's indices; CUDA numbers devices fastest first unless told
        # to use nvidia-smi's (PCI bus) order, and on a mixed machine index 0 would be another GPU.
        env = {**job_environ(os.environ), **env, "PYTHONUNBUFFERED": "1", "LLMOS_JOB_ID": str(job_id),
               "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus)),
               "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "LLMOS_WORKER_CORES": ";".join(",".join(map(str, w["cores"])) for w in workers),
               "LLMOS_WORKER_LOGS": str(folder)}
        if not sandbox and len(workers) == 1:  # forked from a warm process where one runs (llmos._forkserver)
            from llmos import _forkserver

            pid = _forkserver.launch(command, env, cwd=cwd or folder, log=folder / "output.log", cores=cores,
                                     exit_file=folder / "exit.json")
            if pid is not None:
                proc = Proc(pid, _create_time(pid) or 0.0, warm=True)
                _write_new(folder / "pid.json", proc.to_json())
                return proc.to_json()
        proc = self.spawn([sys.executable, str(_SHIM), str(folder), ",".join(map(str, cores)), *sandbox, "--",
                           *command], env, folder / "output.log", cwd)
        return proc.to_json()

    def spawn(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None) -> Proc:
        with open(log_path, "ab") as log:
            # A session of its own: the daemon's death (or Ctrl-C in its terminal) leaves it running.
            child = subprocess.Popen(argv, env=env, cwd=cwd or log_path.parent, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self._children[child.pid] = child
        proc = Proc(child.pid, _create_time(child.pid) or 0.0)
        _write_new(log_path.parent / "pid.json", proc.to_json())
        return proc

    def popen(self, proc: Proc) -> subprocess.Popen | None:
        return self._children.get(proc.pid)

    def poll(self, handle: str, folder: Path) -> Exit | None:
        """How an attempt ended (ours or adopted after a restart); None while it runs."""
        proc = Proc.from_json(handle)
        child = self._children.get(proc.pid)
        if child is not None:
            if child.poll() is None:
                return None
            del self._children[proc.pid]
            fallback: int | None = _signed(child.returncode)
        elif alive(proc):
            return None
        else:
            fallback = None
        recorded = exit_record(folder / "exit.json")
        if recorded is None:
            # The supervisor died without recording an exit (SIGKILL, OOM): whatever it started in
            # its process group must not run on beside a retry.
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            return Exit(fallback, None)
        return recorded

    def alive(self, handle: str) -> bool:
        return alive(Proc.from_json(handle))

    def terminate(self, handle: str) -> None:
        """Ask for a graceful stop: SIGTERM to the shim, which passes it to the program."""
        proc = Proc.from_json(handle)
        if alive(proc):
            _signal(proc.pid, signal.SIGTERM)

    def kill(self, handle: str) -> None:
        """SIGKILL the attempt and every process under it (torchrun's workers have sessions of their own)."""
        import psutil

        proc = Proc.from_json(handle)
        if not alive(proc):
            return
        try:
            tree = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            tree = []
        for p in [psutil.Process(proc.pid), *tree]:
            with contextlib.suppress(psutil.Error):
                p.kill()


def isolated(argv: list[str], env: dict[str, str], isolation: str, project: str, folder: Path,
             cores: list[int]) -> tuple[list[str], dict[str, str]]:
    """(argv, env) that start `argv` isolated as a job of `project` is (a serve replica: its
    deployment's folder is `folder`), pinned to `cores`; the environment without daemon secrets."""
    env = job_environ(env)
    if isolation not in ("users", "sandbox"):
        return argv, env
    from llmos.executor._jobuser import attempt_sandbox

    plan = attempt_sandbox(isolation, project, folder, None)
    return ([sys.executable, str(_SHIM), str(folder), ",".join(map(str, cores)), plan.to_json(), "--", *argv],
            {**env, **plan.extra})


def alive(proc: Proc) -> bool:
    """True while the process with this pid *and* this start time runs (zombies count as ended)."""
    import psutil

    try:
        p = psutil.Process(proc.pid)
        return abs(p.create_time() - proc.create_time) < 0.05 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _write_new(path: Path, text: str) -> None:
    """Write `path` as a new file put in place atomically: never through a link an isolated job
    (which owns its attempt folder) left at that name."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _signed(returncode: int) -> int:
    # The shim exits 128+N when its program died of signal N; report that as -N like Popen does.
    return returncode - 128 if 128 < returncode < 160 else returncode


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None
