"""Sweeps under the control plane: a thin shell around `llmos.sweep.one_round`.

A sweep is a row in `jobs` (kind sweep, RUNNING from its submission, holding nothing, never
queued), a row in `sweeps` naming its Optuna study, and a row per trial in `sweep_trials`. The
study lives in this same database (Optuna's RDB storage), so a restarted daemon carries on. Each
trial is an ordinary train job with the sweep's owner, project, priority and max_retries (fair
share and quotas apply), created in the transaction that records it, so no trial starts twice.
Trials never touch this database: the driver reads their evaluations from their run folders
(`eval.jsonl`), tells the pruner, and stops a pruned trial as a cancel does (SIGTERM: it
checkpoints and exits), recording it as pruned.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from llmos.control._db import read, write
from llmos.control._errors import Conflict
from llmos.control._schema import jobs, sweep_trials, sweeps
from llmos.control._states import TERMINAL, JobState
from llmos.control._transition import create_job, transition

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from llmos.spec import SweepJob

__all__ = ["SweepDriver", "create_sweep", "sweep_view"]

_ROUND_EVERY_S = 1.0  # a sweep's round reads run folders and the study: once a second is plenty
_RUNNING = ("QUEUED", "STARTING", "RUNNING", "PREEMPTED")
_MAX_ROUND_ERRORS = 30  # rounds (about a second apart) that fail in a row before the sweep is failed


def create_sweep(conn: Connection, job: SweepJob, values: dict[str, Any], reason: str, now_s: float) -> int:
    """Store a sweep: its row (RUNNING at once: it is never placed) and its study's name and folder."""
    from llmos.paths import runs_dir
    from llmos.sweep import study_name

    job_id = create_job(conn, {**values, "name": job.name, "kind": "sweep", "workers": 0, "cpus": 0.0,
                               "memory_gb": 0.0, "gpus": 0, "same_node": True,
                               "spec": job.model_dump_json(by_alias=True)}, reason, now_s=now_s)
    folder = Path(job.output or runs_dir() / f"{job.name}-{job_id}").expanduser().resolve()
    transition(conn, job_id, JobState.STARTING, "a sweep holds nothing: its trials are jobs", now_s=now_s)
    transition(conn, job_id, JobState.RUNNING, f"{job.trials} trial(s), {job.max_parallel} at a time, "
               f"{job.sampler} sampler, {job.pruner.kind} pruner", now_s=now_s, run_dir=str(folder))
    conn.execute(insert(sweeps).values(sweep_id=job_id, study=study_name(job, job_id), folder=str(folder)))
    return job_id


def sweep_view(conn: Connection, sweep_id: int) -> dict[str, Any] | None:
    """The sweep as `llmos jobs show` displays it: each trial's job, state, params and value."""
    row = conn.execute(select(sweeps).where(sweeps.c.sweep_id == sweep_id)).first()
    if row is None:
        return None
    trials = conn.execute(select(sweep_trials, jobs.c.state.label("job_state"), jobs.c.spec, jobs.c.reason)
                          .select_from(sweep_trials.join(jobs, jobs.c.id == sweep_trials.c.job_id))
                          .where(sweep_trials.c.sweep_id == sweep_id).order_by(sweep_trials.c.number)).all()
    spec = json.loads(conn.execute(select(jobs.c.spec).where(jobs.c.id == sweep_id)).scalar_one())
    result = json.loads(row.result) if row.result else None
    best = (result or {}).get("best") or {}
    out = []
    for t in trials:
        trial_spec = json.loads(t.spec)
        state = _trial_state(t.job_state, t.pruned)
        value = _value(Path(row.folder) / f"t{t.number}", spec.get("metric", "accuracy"), state)
        out.append({"number": t.number, "job_id": t.job_id, "state": state, "job_state": t.job_state,
                    "params": {p: _get(trial_spec, p) for p in spec.get("params", {})}, "value": value,
                    "best": best.get("number") == t.number})
    return {"study": row.study, "folder": row.folder, "metric": spec.get("metric"),
            "direction": spec.get("direction"), "trials_total": spec.get("trials"), "trials": out,
            "ended_s": row.ended_s, "result": result}


class SweepDriver:
    """Runs a round of every live sweep; the study and MLflow parent of each are opened once.

    With `background` (the daemon), the rounds run in a thread of their own: opening a study and
    its MLflow parent the first time, or drawing the plots at the end, takes seconds that the
    scheduling loop must not wait for. Trial jobs it creates are picked up by the loop's next round
    (`wake`); every change goes through `transition`, safe beside the loop as the API's are."""

    def __init__(self, engine: Engine, log: Any = print, background: bool = False,
                 wake: Any = lambda: None) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=False)  # Optuna opens its own engine on it
        self.log = log
        self.background, self.wake = background, wake
        self._open: dict[int, tuple[Any, Any, Any]] = {}  # sweep id -> (SweepJob, Study, Parent)
        self._last_s = 0.0
        self._thread: threading.Thread | None = None
        self._errors: dict[int, int] = {}  # sweep id -> rounds failed in a row

    def tick(self, now: float | None = None) -> None:
        if self.background:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sweeps", daemon=True)
                self._thread.start()
            return
        self.rounds(now)

    def _run(self) -> None:
        while True:
            try:
                if self.rounds():
                    self.wake()
            except Exception as exc:  # e.g. the database briefly unreachable: try again next second
                self.log(f"sweeps: round failed: {exc!r}")
            time.sleep(_ROUND_EVERY_S)

    def rounds(self, now: float | None = None) -> int:
        """A round of every live sweep; returns how many there were."""
        now = time.time() if now is None else now
        if now - self._last_s < _ROUND_EVERY_S and not self.background:
            return 0
        self._last_s = now
        with read(self.engine) as conn:
            live = conn.execute(select(jobs, sweeps.c.folder, sweeps.c.study)
                                .select_from(jobs.join(sweeps, sweeps.c.sweep_id == jobs.c.id))
                                .where(sweeps.c.ended_s.is_(None))).all()
        for row in live:
            try:
                with _shared_umask():
                    self._round(row, now)
                self._errors.pop(row.id, None)
            except Exception as exc:  # one broken sweep must not stop the others, nor the scheduler
                self.log(f"sweep {row.id}: round failed: {exc!r}")
                self._errors[row.id] = self._errors.get(row.id, 0) + 1
                if self._errors[row.id] >= _MAX_ROUND_ERRORS:  # not a passing hiccup: the sweep fails, saying why
                    self._give_up(row, now, str(getattr(exc, "message", exc)))
        return len(live)

    def _give_up(self, row: Any, now: float, why: str) -> None:
        reason = f"sweep rounds failed {_MAX_ROUND_ERRORS} times in a row: {why}"
        with write(self.engine) as conn:
            conn.execute(update(sweeps).where(sweeps.c.sweep_id == row.id).values(
                ended_s=now, result=json.dumps({"failed": reason})))
            with contextlib.suppress(Conflict):
                transition(conn, row.id, JobState.FAILED, reason, now_s=now, expect=[JobState.RUNNING])
            for (job_id,) in conn.execute(select(sweep_trials.c.job_id).where(sweep_trials.c.sweep_id == row.id)):
                state, holds = conn.execute(select(jobs.c.state, jobs.c.holds).where(jobs.c.id == job_id)).one()
                if JobState(state) not in TERMINAL:
                    with contextlib.suppress(Conflict):
                        transition(conn, job_id, JobState.CANCELLED, f"sweep {row.id} failed", now_s=now,
                                   **({"stop_s": now} if holds else {}))
        self._open.pop(row.id, None)
        self._errors.pop(row.id, None)
        self.log(f"sweep {row.id}: {reason}")

    def _round(self, row: Any, now: float) -> None:
        from llmos.sweep import finish, one_round

        sweep, study, parent = self._get(row)
        trials = JobTrials(self.engine, row, now)
        say = lambda text: self.log(f"sweep {row.id}: {text}")  # noqa: E731
        cancelled = JobState(row.state) in TERMINAL
        step = one_round(sweep, study, trials, parent, Path(row.folder), cancelled=cancelled, say=say)
        if not step.done:
            return
        result = finish(sweep, study, parent, Path(row.folder), step.failed, say=say)
        best = result["best"]
        if best is not None:
            best = {k: v for k, v in best.items() if k != "summary"}
        with write(self.engine) as conn:
            conn.execute(update(sweeps).where(sweeps.c.sweep_id == row.id).values(
                ended_s=now, result=json.dumps({**result, "best": best}, default=str)))
            if not cancelled:
                to = JobState.FAILED if step.failed else JobState.SUCCEEDED
                reason = step.failed or (f"best trial {best['number']}: {sweep.metric} {best['value']:.4f}"
                                         if best else "done")
                if result.get("registered"):
                    reg = result["registered"]
                    reason += f"; registered {reg['name']} version {reg['version']}" + (
                        f" @{reg['alias']}" if reg["alias"] else "")
                transition(conn, row.id, to, reason, now_s=now, expect=[JobState.RUNNING])
        self._open.pop(row.id, None)
        self.log(f"sweep {row.id}: ended ({step.failed or 'done'})")

    def _get(self, row: Any) -> tuple[Any, Any, Any]:
        if row.id not in self._open:
            from llmos.spec import validate_dict
            from llmos.sweep import Parent, Study

            sweep = validate_dict(json.loads(row.spec), f"sweep {row.id}")
            study = Study(sweep, self.url, row.study)  # type: ignore[arg-type]
            self._open[row.id] = (sweep, study, Parent(sweep, study.study))  # type: ignore[arg-type]
        return self._open[row.id]


class JobTrials:
    """The `Trials` of one sweep as jobs in this database."""

    def __init__(self, engine: Engine, sweep_row: Any, now: float) -> None:
        self.engine, self.row, self.now = engine, sweep_row, now

    def runs(self) -> dict[int, Any]:
        from llmos.sweep import Run

        with read(self.engine) as conn:
            rows = conn.execute(select(sweep_trials, jobs.c.state, jobs.c.reason, jobs.c.run_dir)
                                .select_from(sweep_trials.join(jobs, jobs.c.id == sweep_trials.c.job_id))
                                .where(sweep_trials.c.sweep_id == self.row.id)).all()
        return {r.number: Run(_trial_state(r.state, r.pruned), Path(r.run_dir),
                              f"job {r.job_id} {r.state}: {r.reason}") for r in rows}

    def start(self, number: int, job: Any) -> None:
        from llmos.control._submit import request_of

        request, row = request_of(job), self.row
        with write(self.engine) as conn:
            job_id = create_job(conn, {
                "name": job.name, "kind": job.kind, "owner": row.owner, "project": row.project,
                "priority": row.priority, "spec": job.model_dump_json(by_alias=True),
                "workers": request.workers, "cpus": float(request.cpus), "memory_gb": request.memory_gb,
                "gpus": request.gpus, "same_node": request.same_node, "max_retries": row.max_retries,
                "run_dir": str(Path(job.output).resolve())}, f"trial {number} of sweep {row.id}", now_s=self.now)
            conn.execute(insert(sweep_trials).values(sweep_id=row.id, number=number, job_id=job_id, pruned=False))

    def stop(self, number: int, why: str) -> None:
        with write(self.engine) as conn:
            trial = conn.execute(select(sweep_trials.c.job_id).where(
                sweep_trials.c.sweep_id == self.row.id, sweep_trials.c.number == number)).scalar_one()
            state, holds = conn.execute(select(jobs.c.state, jobs.c.holds).where(jobs.c.id == trial)).one()
            pruned = why.startswith("pruned")
            conn.execute(update(sweep_trials).where(sweep_trials.c.job_id == trial).values(pruned=pruned))
            if JobState(state) in TERMINAL:
                return
            with contextlib.suppress(Conflict):  # it ended meanwhile: the next round records how
                transition(conn, trial, JobState.CANCELLED, f"{why} (sweep {self.row.id})", now_s=self.now,
                           **({"stop_s": self.now} if holds else {}))


@contextlib.contextmanager
def _shared_umask() -> Any:
    """What a round writes in the tracking store (the parent run, its plots, the trials' runs) and the
    trials' run folders must stay usable by the jobs' users: the store's folders are setgid to the
    jobs' group, so a group-writable mode is enough. The daemon's umask (077) comes back at once; a
    file the API thread makes meanwhile gets group rights for its folder's group (the control folder's
    is the daemon's own)."""
    old = os.umask(0o007)
    try:
        yield
    finally:
        os.umask(old)


def _trial_state(job_state: str, pruned: bool) -> str:
    if pruned:
        return "pruned"
    if job_state in _RUNNING:
        return "running"
    return {"SUCCEEDED": "complete"}.get(job_state, "failed")


def _value(run_dir: Path, metric: str, state: str) -> float | None:
    """A complete trial's final metric; a running or pruned one's latest evaluation."""
    from llmos.run import read_evals
    from llmos.sweep import trial_value

    if state == "complete":
        return trial_value(run_dir, metric)
    evals = [m[metric] for _, m in read_evals(run_dir) if metric in m]
    return evals[-1] if evals else None


def _get(data: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)  # type: ignore[assignment]
    return data
