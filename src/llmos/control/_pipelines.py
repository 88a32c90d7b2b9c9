"""Pipelines under the control plane: a thin shell around `llmos.pipeline.advance`.

A pipeline is a row in `jobs` (kind pipeline, RUNNING from its submission, holding nothing, never
queued) plus a row per stage in `pipeline_stages`. Each round the driver reads them, turns the
stage jobs' states into stage states (reading what a succeeded one yielded), asks `advance` what
to start, and starts it: a stage job is an ordinary job with the pipeline's owner, project,
priority and max_retries, created in the same transaction that records it on the stage, so a
daemon that dies at any point resumes where it was and never starts a stage twice.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, or_, select, update

from llmos.control._auth import Caller
from llmos.control._db import read, write
from llmos.control._errors import Conflict
from llmos.control._schema import jobs, pipeline_stages
from llmos.control._states import TERMINAL, JobState
from llmos.control._transition import create_job, transition
from llmos.errors import LlmosError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from llmos.spec._pipeline import PipelineJob

__all__ = ["PipelineDriver", "create_pipeline", "stages_view"]


def create_pipeline(conn: Connection, job: PipelineJob, values: dict[str, Any], reason: str, now_s: float) -> int:
    """Store a pipeline: its row (RUNNING at once: it is never placed) and a PENDING row per stage."""
    job_id = create_job(conn, {**values, "name": job.name, "kind": "pipeline", "workers": 0, "cpus": 0.0,
                               "memory_gb": 0.0, "gpus": 0, "same_node": True,
                               "spec": job.model_dump_json(by_alias=True)}, reason, now_s=now_s)
    transition(conn, job_id, JobState.STARTING, "a pipeline holds nothing: its stages are jobs", now_s=now_s)
    transition(conn, job_id, JobState.RUNNING, f"{len(job.stages)} stage(s): "
               + ", ".join(s.name for s in job.stages), now_s=now_s)
    for i, stage in enumerate(job.stages):
        conn.execute(insert(pipeline_stages).values(
            pipeline_id=job_id, name=stage.name, position=i, action=stage.action, needs=json.dumps(stage.needs()),
            state="PENDING", reason="", updated_s=now_s))
    return job_id


def stages_view(conn: Connection, pipeline_id: int) -> list[dict[str, Any]]:
    """The stages as the API shows them, in spec order, each with its job's state."""
    rows = conn.execute(select(pipeline_stages, jobs.c.state.label("job_state"))
                        .select_from(pipeline_stages.outerjoin(jobs, jobs.c.id == pipeline_stages.c.job_id))
                        .where(pipeline_stages.c.pipeline_id == pipeline_id)
                        .order_by(pipeline_stages.c.position)).all()
    return [{"name": r.name, "action": r.action, "needs": json.loads(r.needs), "state": r.state, "job_id": r.job_id,
             "job_state": r.job_state, "model": r.model, "folder": r.folder, "reason": r.reason,
             "updated_s": r.updated_s, "started_s": r.started_s} for r in rows]


@functools.lru_cache(maxsize=256)
def _deploy_target(spec: str, stage: str) -> tuple[str, float]:
    """A deploy stage's deployment name and its ready_timeout_s, from its pipeline's spec (parsed once)."""
    from llmos.spec import validate_dict
    from llmos.spec._pipeline import stage_defaults

    job = validate_dict(json.loads(spec), "pipeline")
    found = job.stage(stage)  # type: ignore[attr-defined]
    name = {**stage_defaults(found, job.name), **found.body()}["name"]  # type: ignore[attr-defined]
    return str(name), float(found.ready_timeout)


class PipelineDriver:
    def __init__(self, engine: Engine, deployments: Any = None, log: Any = print) -> None:
        self.engine = engine
        self.deployments = deployments  # the daemon's DeploymentManager, for deploy stages
        self.log = log

    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with read(self.engine) as conn:
            # running pipelines, and ended (cancelled) ones whose stages must still be wound down
            live = conn.execute(select(jobs).where(jobs.c.kind == "pipeline", or_(
                jobs.c.state == JobState.RUNNING.value, jobs.c.id.in_(select(pipeline_stages.c.pipeline_id).where(
                    pipeline_stages.c.state.in_(("PENDING", "RUNNING"))))))).all()
        for row in live:
            try:
                self._advance(row, now)
            except Exception as exc:  # one broken pipeline must not stop the others, nor the scheduler
                self.log(f"pipeline {row.id}: round failed: {exc!r}")

    # ---- one pipeline ------------------------------------------------------------------------
    def _advance(self, pipe: Any, now: float) -> None:
        from llmos.pipeline import advance

        stages = self._observe(pipe, now)
        if JobState(pipe.state) in TERMINAL:  # cancelled (or ended) with stages still live
            self._wind_down(pipe, stages, now)
            return
        progress = advance({s["name"]: (s["state"], s["needs"]) for s in stages})
        by_name = {s["name"]: s for s in stages}
        for name in progress.skip:
            self._set(pipe.id, name, now, state="SKIPPED",
                      reason=f"not started: stage {', '.join(progress.failed)} failed")
        for name in progress.submit:
            self._start(pipe, by_name[name], {s["name"]: s["model"] for s in stages if s["model"]}, now)
        if progress.state == "running":
            return
        if progress.state == "succeeded":
            last = next((s["model"] for s in reversed(stages) if s["model"]), None)
            to, reason = JobState.SUCCEEDED, "every stage succeeded" + (f"; it yielded {last}" if last else "")
        else:
            failed = by_name.get(progress.failed[0])
            why = failed["reason"] if failed else "its stages wait on each other"
            to, reason = JobState.FAILED, f"stage {progress.failed[0]} failed: {why}"
        with write(self.engine) as conn:
            transition(conn, pipe.id, to, reason, now_s=now, expect=[JobState.RUNNING])
        self.log(f"pipeline {pipe.id}: {reason}")

    def _observe(self, pipe: Any, now: float) -> list[dict[str, Any]]:
        """The stages, with each RUNNING one whose job has finished (or whose deployment is ready)
        moved on, reading what it yielded."""
        from llmos.pipeline import read_verdict, stage_state_of_job

        pipeline_id = pipe.id
        with read(self.engine) as conn:
            stages = stages_view(conn, pipeline_id)
            reasons = {r.id: r.reason for r in conn.execute(select(jobs.c.id, jobs.c.reason).where(
                jobs.c.id.in_([s["job_id"] for s in stages if s["job_id"]])))}
        for s in stages:
            if s["state"] == "RUNNING" and s["action"] == "deploy":
                self._watch_deploy(pipe, s, now)
                continue
            if s["state"] != "RUNNING" or s["job_id"] is None or s["job_state"] is None:
                continue
            state = stage_state_of_job(s["job_state"])
            if state == "RUNNING":
                continue
            if state == "SUCCEEDED":
                verdict = read_verdict(s["action"], Path(s["folder"]))
                state, model, reason = ("SUCCEEDED" if verdict.ok else "FAILED"), verdict.model, verdict.reason
            else:
                model, reason = None, f"job {s['job_id']} {s['job_state']}: {reasons.get(s['job_id'], '')}"
            self._set(pipeline_id, s["name"], now, state=state, model=model, reason=reason)
            s.update(state=state, model=model, reason=reason)
        return stages

    def _start(self, pipe: Any, stage: dict[str, Any], models: dict[str, str], now: float) -> None:
        from llmos.control._submit import request_of, validate_submission
        from llmos.pipeline import make_pipeline_folder, pipeline_folder, stage_spec
        from llmos.spec import validate_dict

        job = validate_dict(json.loads(pipe.spec), f"pipeline {pipe.id}")
        folder = pipeline_folder(job, str(pipe.id)) / stage["name"]  # type: ignore[arg-type]
        try:
            make_pipeline_folder(folder.parent)
            spec = stage_spec(job, job.stage(stage["name"]), models, folder)  # type: ignore[attr-defined]
            model = validate_submission(spec)
            if stage["action"] == "deploy":
                self._deploy(pipe, stage, model, now)
                return
            request = request_of(model)
        except LlmosError as exc:
            problems = "; ".join(f"{p}: {m}" for p, m in getattr(exc, "problems", None) or [])
            self._set(pipe.id, stage["name"], now, state="FAILED",
                      reason=f"could not start: {exc.message}" + (f" {problems}" if problems else ""))
            return
        with write(self.engine) as conn:
            job_id = create_job(conn, {
                "name": f"{pipe.name}-{stage['name']}", "kind": model.kind, "owner": pipe.owner,  # type: ignore[attr-defined]
                "project": pipe.project, "priority": pipe.priority, "spec": model.model_dump_json(by_alias=True),
                "workers": request.workers, "cpus": float(request.cpus), "memory_gb": request.memory_gb,
                "gpus": request.gpus, "same_node": request.same_node, "max_retries": pipe.max_retries,
                "run_dir": str(folder)},  # every stage job writes there (evaluate, promote: result.json)
                f"stage {stage['name']} of pipeline {pipe.id}", now_s=now)
            self._set(pipe.id, stage["name"], now, conn=conn, state="RUNNING", job_id=job_id, folder=str(folder),
                      reason=f"job {job_id}", started_s=now)
        self.log(f"pipeline {pipe.id}: stage {stage['name']} is job {job_id}")

    def _deploy(self, pipe: Any, stage: dict[str, Any], job: Any, now: float) -> None:
        """Ask for the deployment; the stage then waits (RUNNING) until its replicas are ready."""
        from llmos.pipeline import deploy_readiness, expected_version

        if self.deployments is None:
            raise LlmosError("deployments are not available on this control plane.",
                             hint=f"Deploy it by hand: llmos deploy {job.model}")
        caller = Caller(pipe.owner, "developer", f"pipeline {pipe.id}")
        view = self.deployments.deploy(caller, job, pipe.project)  # a name deployed already rolls to it
        version = expected_version(view)  # what the stage waits for; `started_s` starts its clock
        waiting = deploy_readiness(view, version, waited_s=0.0, timeout_s=_deploy_target(pipe.spec, stage["name"])[1])
        self._set(pipe.id, stage["name"], now, state="RUNNING", model=version, started_s=now,
                  reason=waiting.reason if waiting.state == "RUNNING" else "deploying")
        self.log(f"pipeline {pipe.id}: stage {stage['name']} deployed {job.name} ({version}); waiting for it")

    def _watch_deploy(self, pipe: Any, s: dict[str, Any], now: float) -> None:
        """A deploy stage that waits: done once its replicas are ready, failed when they cannot be.
        All it needs is in the database (its version in `model`, its clock in `started_s`), so a
        restarted daemon goes on waiting where the last one was."""
        from llmos.control._errors import NotFound
        from llmos.pipeline import deploy_readiness, log_tail

        if self.deployments is None:  # a daemon started again without them
            self._set(pipe.id, s["name"], now, state="FAILED", reason="deployments are not available on this "
                      "control plane: nothing watches the deployment")
            s.update(state="FAILED")
            return
        name, timeout_s = _deploy_target(pipe.spec, s["name"])
        started = s["started_s"] if s["started_s"] is not None else s["updated_s"]
        try:
            view = self.deployments.show(name)
        except NotFound:
            view = None
        verdict = deploy_readiness(view, str(s["model"]), waited_s=now - started, timeout_s=timeout_s)
        reason = verdict.reason
        if verdict.state == "FAILED" and view is not None:
            try:
                tail = log_tail(self.deployments.log_files(name),
                                lambda file, offset: self.deployments.read_log(name, file, offset)["text"],
                                running=[r["id"] for r in view["replicas"]])
            except Exception as exc:  # the reason stands without its log lines
                tail = f"(its logs could not be read: {exc})"
            reason += f"; {tail}" if tail else ""
        if verdict.state != s["state"] or reason != s["reason"]:  # written when it changes, not each round
            self._set(pipe.id, s["name"], now, state=verdict.state, reason=reason)
            s.update(state=verdict.state, reason=reason)

    def _wind_down(self, pipe: Any, stages: list[dict[str, Any]], now: float) -> None:
        """A cancelled pipeline: its running stage jobs are cancelled, its pending stages skipped."""
        for s in stages:
            if s["state"] == "PENDING":
                self._set(pipe.id, s["name"], now, state="SKIPPED", reason=f"pipeline {pipe.state.lower()}")
            elif s["state"] == "RUNNING" and s["action"] == "deploy":  # stop waiting; what serves stays
                self._set(pipe.id, s["name"], now, state="FAILED",
                          reason=f"pipeline {pipe.state.lower()} while its deployment came up (it stays "
                                 f"deployed: llmos undeploy {_deploy_target(pipe.spec, s['name'])[0]})")
            elif s["state"] == "RUNNING" and s["job_id"] is not None:
                try:
                    with write(self.engine) as conn:
                        holds = conn.execute(select(jobs.c.holds).where(jobs.c.id == s["job_id"])).scalar_one()
                        transition(conn, s["job_id"], JobState.CANCELLED,
                                   f"pipeline {pipe.id} was {pipe.state.lower()}", now_s=now,
                                   **({"stop_s": now} if holds else {}))
                except Conflict:
                    pass  # it ended meanwhile: the next round records how
                else:
                    self._set(pipe.id, s["name"], now, state="FAILED", reason=f"cancelled with pipeline {pipe.id}")

    def _set(self, pipeline_id: int, name: str, now: float, conn: Connection | None = None, **values: Any) -> None:
        stmt = update(pipeline_stages).where(pipeline_stages.c.pipeline_id == pipeline_id,
                                             pipeline_stages.c.name == name).values(updated_s=now, **values)
        if conn is not None:
            conn.execute(stmt)
            return
        with write(self.engine) as own:
            own.execute(stmt)
