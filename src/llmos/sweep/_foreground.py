"""`llmos sweep run`: a sweep in the foreground, without a control plane. Trials are subprocesses
(`python -m llmos.run JOB.json`, as every job runs), at most `max_parallel` at a time, sharing the
machine's cores; the study is a SQLite file in the sweep folder, so running the command again
resumes the sweep (interrupted trials resume from their checkpoints)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from llmos.spec import SweepJob
from llmos.sweep._driver import Run, finish, one_round
from llmos.sweep._study import Study, study_name
from llmos.sweep._tracking import Parent

__all__ = ["LocalTrials", "run_sweep", "sweep_folder"]


def sweep_folder(sweep: SweepJob) -> Path:
    from llmos.paths import runs_dir

    return Path(sweep.output or runs_dir() / sweep.name).expanduser().resolve()


class LocalTrials:
    """Trial runs as child processes of this one; a stop is SIGTERM (the trial checkpoints and exits 75)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._procs: dict[int, tuple[subprocess.Popen, Path]] = {}
        self._stopped: set[int] = set()

    def runs(self) -> dict[int, Run]:
        out = {}
        for number, (proc, run_dir) in self._procs.items():
            code = proc.poll()
            if number in self._stopped:
                out[number] = Run("pruned", run_dir)
            elif code is None:
                out[number] = Run("running", run_dir)
            else:
                out[number] = Run("complete" if code == 0 else "failed", run_dir,
                                  "" if code == 0 else f"exit {code}; see {run_dir / 'train.log'}")
        return out

    def start(self, number: int, job: Any) -> None:
        from llmos.run import job_file, prepare_run_dir, worker_command

        job = prepare_run_dir(job)
        run_dir = Path(job.output)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(self.threads)}
        with open(run_dir / "train.log", "ab") as log:
            proc = subprocess.Popen(worker_command(job, job_file(job)), env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # Ctrl-C reaches this driver, which stops them
        self._procs[number] = (proc, run_dir)

    def stop(self, number: int, why: str) -> None:
        proc, _ = self._procs[number]
        self._stopped.add(number)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    def stop_all(self, timeout_s: float = 30.0) -> None:
        live = [p for p, _ in self._procs.values() if p.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in live:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


def run_sweep(sweep: SweepJob, *, storage: str | None = None, poll_s: float = 0.25, say: Any = print) -> dict[str, Any]:
    """Run the sweep to its end here; returns `finish`'s result plus the folder and the study's URL."""
    folder = sweep_folder(sweep)
    folder.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{folder / 'study.db'}"
    study = Study(sweep, url, study_name(sweep))
    parent = Parent(sweep, study.study)
    cores = len(os.sched_getaffinity(0))
    trials = LocalTrials(threads=max(1, cores // sweep.max_parallel))
    say(f"sweep {sweep.name}: {sweep.trials} trials, {sweep.max_parallel} at a time, study {url}")
    try:
        while True:
            step = one_round(sweep, study, trials, parent, folder, say=say)
            if step.done:
                break
            time.sleep(poll_s)
    except BaseException:
        trials.stop_all()
        raise
    trials.stop_all()  # pruned trials still checkpointing
    result = finish(sweep, study, parent, folder, step.failed, say=say)
    return {**result, "folder": str(folder), "storage": url}
