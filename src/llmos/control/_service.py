"""The control plane's operations, independent of HTTP: submit, list, show, cancel, logs, tokens.

The REST app is a thin shell over this class; each state-changing operation runs in one short
write transaction together with its audit record, and a refused one is audited too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from llmos.control import _auth as auth
from llmos.control import _projects as projects
from llmos.control._confine import check_paths
from llmos.control._db import read, write
from llmos.control._errors import Conflict, ControlError, NotFound
from llmos.control._isolation import token_refusal
from llmos.control._logfiles import read_chunk
from llmos.control._paths import job_dir
from llmos.control._project_admin import Projects
from llmos.control._schema import attempts, jobs, transitions
from llmos.control._secret_admin import SecretAdmin
from llmos.control._secret_refs import masked_spec
from llmos.control._secrets import check_references, job_values
from llmos.control._states import HOLDING, TERMINAL, JobState
from llmos.control._submit import check_fits, request_of, split_project, validate_submission
from llmos.control._transition import create_job, transition
from llmos.control._views import JOB_COLUMNS, job_view
from llmos.errors import LlmosError, SpecError
from llmos.executor import Cluster, Inventory
from llmos.spec import CommandJob

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from llmos.control._config import ControlConfig

__all__ = ["Service"]

_MAX_PAGE = 10_000
_TOUCH_EVERY_S = 60.0  # how stale a token's `last_used_s` may get: at most one write a minute per token


class Service:
    def __init__(self, engine: Engine, inventory: Inventory, config: ControlConfig,
                 wake: Callable[[], None] = lambda: None, hosts: Callable[[], Cluster] | None = None) -> None:
        self.engine = engine
        self.inventory = inventory  # this machine (replicas run here)
        self.hosts = hosts or (lambda: Cluster.of(inventory))  # where jobs run: this machine, or Ray's nodes now
        self.config = config
        self.wake = wake
        self.deployments: Any = None  # set by the daemon when deployments are available
        self.isolation = "trusted"  # set by the daemon (llmos.control._isolation): `none` makes admin tokens only
        self.project_admin = Projects(engine, self._audited)  # projects, members, grants, quotas; users
        self.secret_admin = SecretAdmin(engine, self._audited)  # per-project secrets and path roots
        # token digest -> caller. A revocation clears it and bumps the generation, so that a check
        # that read the token before the revocation committed cannot put it back afterwards.
        self._callers: dict[str, auth.Caller] = {}
        self._generation = 0
        self._callers_lock = threading.Lock()
        self._used_s: dict[str, float] = {}  # token digest -> when `last_used_s` was last written

    # ---- identity ------------------------------------------------------------------------------
    def caller(self, token: str | None, source: str) -> auth.Caller:
        key = auth.digest(token) if token else ""
        known = self._callers.get(key)
        if known is None:
            generation = self._generation
            with read(self.engine) as conn:
                known = auth.verify(conn, token, source)
            with self._callers_lock:
                if generation == self._generation:
                    self._callers[key] = known
        self._touch(key)
        return auth.Caller(known.owner, known.role, source)

    def _touch(self, key: str) -> None:
        from sqlalchemy.exc import OperationalError

        now = time.time()
        if now - self._used_s.get(key, 0.0) < _TOUCH_EVERY_S:
            return
        self._used_s[key] = now
        try:
            with write(self.engine) as conn:
                auth.touch(conn, key, now)
        except OperationalError:  # bookkeeping: never fail a request over it; the next one retries
            self._used_s.pop(key, None)

    # ---- jobs ----------------------------------------------------------------------------------
    def submit(self, caller: auth.Caller, spec: dict[str, Any], overrides: list[str] | None = None,
               priority: str = "normal", project: str | None = None, max_retries: int | None = None) -> dict:
        from llmos.scheduler import priority_rank

        with self._audited(caller, "submit", spec.get("name", "?") if isinstance(spec, dict) else "?") as note:
            auth.require(caller, "developer", "submit jobs")
            spec, spec_project = split_project(spec)
            try:
                rank = priority_rank(priority)
            except LlmosError as exc:
                raise SpecError("bad submission:", problems=[("priority", exc.message)], hint=exc.hint) from None
            with read(self.engine) as conn:  # who may do what where, before anything else is looked at
                project = project or spec_project or projects.default_project(conn, caller.owner)
                is_serve = isinstance(spec, dict) and spec.get("kind") == "serve"
                projects.authorize(conn, caller, project, "developer", "deploy" if is_serve else "submit jobs")
                if not is_serve:
                    projects.check_priority(conn, caller, project, rank)
            cluster = self.hosts()
            job = validate_submission(spec, overrides, cluster=cluster.backend != "local")
            with read(self.engine) as conn:  # every path under the project's folders; its secrets exist
                check_paths(conn, caller, job, project)
                check_references(conn, job, project)
            if getattr(job, "kind", None) == "serve":
                result = self._deploy(caller, job, project)
                note["audited"] = True  # the deployment recorded its own audit line
                return result
            request = request_of(job)
            check_fits(request, cluster)
            retries = self.config.max_retries if max_retries is None else max_retries
            if retries < 0:
                raise ControlError(f"max_retries must be >= 0, got {retries}.")
            if getattr(job, "kind", None) == "pipeline":  # its stages become jobs as they are ready
                return self._pipeline(caller, job, project, rank, retries, priority, note)
            if getattr(job, "kind", None) == "sweep":  # its trials become jobs as the sampler asks for them
                return self._sweep(caller, job, project, rank, retries, priority, note)
            now = time.time()
            with write(self.engine) as conn:
                job_id = create_job(conn, {
                    "name": job.name, "kind": job.kind, "owner": caller.owner,  # type: ignore[attr-defined]
                    "project": project, "priority": rank, "spec": "{}",
                    "workers": request.workers, "cpus": float(request.cpus), "memory_gb": request.memory_gb,
                    "gpus": request.gpus, "same_node": request.same_node, "max_retries": retries},
                    f"submitted by {caller.owner} from {caller.source}", now_s=now)
                job, run_dir = _with_output(job, job_id)
                if run_dir is not None:
                    _check_run_dir(conn, job_id, run_dir)
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(
                    spec=job.model_dump_json(by_alias=True), run_dir=run_dir))
                auth.record(conn, caller, "submit", f"job {job_id}",
                            detail=f"{job.name} priority={priority}", now_s=now, status=201, project=project)
            note["audited"] = True
        self.wake()
        return {"id": job_id, "state": JobState.QUEUED.value, "run_dir": run_dir}

    def _pipeline(self, caller: auth.Caller, job: Any, project: str, rank: int, retries: int, priority: str,
                  note: dict) -> dict:
        from llmos.control._pipelines import create_pipeline
        from llmos.pipeline import stage_problems

        if problems := stage_problems(job):
            raise SpecError("the pipeline's stages cannot run as written (nothing was queued):", problems=problems)
        now = time.time()
        with write(self.engine) as conn:
            job_id = create_pipeline(conn, job, {"owner": caller.owner, "project": project, "priority": rank,
                                                 "max_retries": retries},
                                     f"submitted by {caller.owner} from {caller.source}", now)
            auth.record(conn, caller, "submit", f"job {job_id}",
                        detail=f"pipeline {job.name} priority={priority}", now_s=now, status=201, project=project)
        note["audited"] = True
        self.wake()
        return {"id": job_id, "state": JobState.RUNNING.value, "run_dir": None}

    def _sweep(self, caller: auth.Caller, job: Any, project: str, rank: int, retries: int, priority: str,
               note: dict) -> dict:
        from llmos.control._sweeps import create_sweep

        now = time.time()
        with write(self.engine) as conn:
            values = {"owner": caller.owner, "project": project, "priority": rank, "max_retries": retries}
            job_id = create_sweep(conn, job, values, f"submitted by {caller.owner} from {caller.source}", now)
            auth.record(conn, caller, "submit", f"job {job_id}",
                        detail=f"sweep {job.name} priority={priority}", now_s=now, status=201, project=project)
        note["audited"] = True
        self.wake()
        return {"id": job_id, "state": JobState.RUNNING.value, "run_dir": None}

    def readable(self, caller: auth.Caller | None) -> set[str] | None:
        """The projects `caller` may read (`projects.readable_projects`); None: all (an admin, or the
        daemon itself when no caller is given)."""
        if caller is None:
            return None
        with read(self.engine) as conn:
            return projects.readable_projects(conn, caller)

    def jobs(self, caller: auth.Caller, state: str | None = None, owner: str | None = None, limit: int = 100,
             before: int | None = None) -> list[dict]:
        """Jobs newest first, of the projects the caller may read."""
        cols = [getattr(jobs.c, c) for c in JOB_COLUMNS]
        query = select(*cols).order_by(jobs.c.id.desc()).limit(max(1, min(limit, _MAX_PAGE)))
        if state:
            states = [s.strip().upper() for s in state.split(",")]
            unknown = [s for s in states if s not in JobState.__members__]
            if unknown:
                raise ControlError(f"unknown state(s) {unknown}.", hint=f"Use: {', '.join(JobState)}.")
            query = query.where(jobs.c.state.in_(states))
        if owner:
            query = query.where(jobs.c.owner == owner)
        if (scope := self.readable(caller)) is not None:
            query = query.where(jobs.c.project.in_(scope))
        if before:
            query = query.where(jobs.c.id < before)
        with read(self.engine) as conn:
            rows = conn.execute(query).all()
        views = [job_view(r) for r in rows]
        for view in views:
            if view["state"] not in HOLDING:
                view["placement"] = None
        return views

    def job(self, job_id: int, viewer: auth.Caller | None = None) -> dict:
        """One job. Its env values (they may hold API keys) are shown as `***` unless `viewer` is its owner
        or an admin; a secret reference is shown as written. A job outside the projects `viewer` may
        read is a 404, as a missing one is."""
        with read(self.engine) as conn:
            row = _readable_job(conn, viewer, job_id)
            history = conn.execute(select(transitions).where(transitions.c.job_id == job_id)
                                   .order_by(transitions.c.id)).all()
            tries = conn.execute(select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.number)).all()
        view = job_view(row)
        view["spec"] = json.loads(row.spec)
        if viewer is None or not (viewer.is_admin or viewer.owner == row.owner):
            view["spec"] = masked_spec(view["spec"])
        view["transitions"] = [{"at_s": t.at_s, "from": t.from_state, "to": t.to_state, "attempt": t.attempt,
                                "reason": t.reason} for t in history]
        view["attempts"] = [{"number": a.number, "started_s": a.started_s, "ended_s": a.ended_s,
                             "exit_code": a.exit_code, "outcome": a.outcome, "pid": a.pid,
                             "placement": json.loads(a.placement) if a.placement else None} for a in tries]
        view["logs"] = self.log_files(job_id)
        if row.kind == "pipeline":
            from llmos.control._pipelines import stages_view

            with read(self.engine) as conn:
                view["stages"] = stages_view(conn, job_id)
        if row.kind == "sweep":
            from llmos.control._sweeps import sweep_view

            with read(self.engine) as conn:
                view["sweep"] = sweep_view(conn, job_id)
        return view

    def cancel(self, caller: auth.Caller, job_id: int) -> dict:
        with self._audited(caller, "cancel", f"job {job_id}") as note:
            auth.require(caller, "developer", "cancel jobs")
            now = time.time()
            with write(self.engine) as conn:
                row = _readable_job(conn, caller, job_id)  # another project's job: a 404, as a missing one
                # A developer of its project cancels its own jobs there; a project admin any of them.
                mine = row.owner == caller.owner
                projects.authorize(conn, caller, row.project, "developer" if mine else "admin",
                                   "cancel jobs" if mine else f"cancel {row.owner}'s jobs")
                if JobState(row.state) in TERMINAL:
                    raise Conflict(f"job {job_id} has already finished ({row.state}); there is nothing to cancel.",
                                   hint=f"See how it ended with: llmos jobs show {job_id}")
                fields = {"stop_s": now} if row.holds else {}
                transition(conn, job_id, JobState.CANCELLED, f"cancelled by {caller.owner}", now_s=now, **fields)
                auth.record(conn, caller, "cancel", f"job {job_id}", now_s=now)
            note["audited"] = True
        self.wake()
        return {"id": job_id, "state": JobState.CANCELLED.value}

    # ---- logs ----------------------------------------------------------------------------------
    def log_files(self, job_id: int, caller: auth.Caller | None = None) -> list[dict]:
        """A job's log files; a 404 for a job `caller` (when given) may not read."""
        if caller is not None:
            with read(self.engine) as conn:
                _readable_job(conn, caller, job_id)
        folder = job_dir(job_id)
        files = sorted(folder.glob("attempt-*/*.log"), key=lambda p: (int(p.parent.name.split("-")[1]), p.name))
        return [{"name": f"{p.parent.name}/{p.name}", "size": p.stat().st_size} for p in files]

    def read_log(self, job_id: int, name: str, offset: int = 0, caller: auth.Caller | None = None) -> dict:
        with read(self.engine) as conn:  # the values of the secrets it was given are shown as ***
            if caller is not None:  # a 404 for a job it may not read
                row = _readable_job(conn, caller, job_id)
            else:
                row = conn.execute(select(jobs.c.project, jobs.c.spec).where(jobs.c.id == job_id)).first()
            hide = job_values(conn, row.project, json.loads(row.spec)) if row is not None else []
        return read_chunk(job_dir(job_id), name, offset, f"job {job_id}", f"llmos jobs show {job_id}", hide=hide)

    # ---- tokens and audit ----------------------------------------------------------------------
    def create_token(self, caller: auth.Caller, role: str, name: str, owner: str | None) -> dict:
        with self._audited(caller, "tokens.create", f"{role} token {name}") as note:
            auth.require(caller, "admin", "create tokens")
            refusal = token_refusal(self.isolation, role)
            if refusal is not None:
                raise refusal
            with write(self.engine) as conn:
                token = auth.create_token(conn, name=name, owner=owner or name, role=role)
                auth.record(conn, caller, "tokens.create", f"{role} token {name}", detail=f"owner={owner or name}",
                            status=201)
            note["audited"] = True
        return {"token": token, "role": role, "owner": owner or name, "name": name}

    def tokens(self, caller: auth.Caller, include_revoked: bool = False) -> list[dict]:
        with self._audited(caller, "tokens.list", "tokens") as note:
            auth.require(caller, "admin", "list tokens")
            with write(self.engine) as conn:
                rows = auth.list_tokens(conn, include_revoked)
                auth.record(conn, caller, "tokens.list", "tokens", detail=f"{len(rows)} listed")
            note["audited"] = True
        return rows

    def revoke_token(self, caller: auth.Caller, token_id: int) -> dict:
        with self._audited(caller, "tokens.revoke", f"token {token_id}") as note:
            auth.require(caller, "admin", "revoke tokens")
            now = time.time()
            with write(self.engine) as conn:
                row = auth.revoke_token(conn, token_id, now_s=now)
                auth.record(conn, caller, "tokens.revoke", f"token {token_id}",
                            detail=f"{row['role']} token {row['name']} of {row['owner']}", now_s=now)
            note["audited"] = True
        with self._callers_lock:
            self._generation += 1
            self._callers.clear()  # the next request with it reads the store again, and is refused
        del row["digest"]
        return row

    def audit(self, caller: auth.Caller, limit: int = 100, since: float | None = None, actor: str | None = None,
              action: str | None = None) -> list[dict]:
        from llmos.control._audit import query

        auth.require(caller, "admin", "read the audit log")
        with read(self.engine) as conn:
            return query(conn, limit=min(limit, _MAX_PAGE), since_s=since, actor=actor, action=action)

    def audit_verify(self, caller: auth.Caller) -> dict:
        from llmos.control._audit import verify
        from llmos.control._audit_head import read_head

        auth.require(caller, "admin", "verify the audit log")
        with read(self.engine) as conn:
            return verify(conn, head=read_head(self.engine)).to_dict()

    def counts(self, caller: auth.Caller | None = None) -> dict[str, int]:
        """Jobs per state, of the projects `caller` (when given) may read."""
        query = select(jobs.c.state, func.count()).group_by(jobs.c.state)
        if (scope := self.readable(caller)) is not None:
            query = query.where(jobs.c.project.in_(scope))
        with read(self.engine) as conn:
            rows = conn.execute(query).all()
        return {state: n for state, n in rows}

    # ---- deployments ---------------------------------------------------------------------------
    def _deploy(self, caller: auth.Caller, job: Any, project: str) -> dict:
        if self.deployments is None:
            raise ControlError("deployments are not available in this build of the control plane.",
                               hint="Serve the model in the foreground with: llmos serve MODEL_REF")
        self.wake()
        return self.deployments.deploy(caller, job, project)

    def undeploy(self, caller: auth.Caller, name: str) -> dict:
        with self._audited(caller, "undeploy", f"deployment {name}"):
            auth.require(caller, "developer", "stop deployments")
            if self.deployments is None:
                raise NotFound(f"no deployment {name}.", hint="List them with: llmos status")
            return self.deployments.undeploy(caller, name)

    def canary(self, caller: auth.Caller, name: str, action: str) -> dict:
        """`promote` or `rollback` a deployment's running canary (audited by the deployments, or refused here)."""
        with self._audited(caller, f"deploy.{action}", f"deployment {name}"):
            if self.deployments is None:
                raise NotFound(f"no deployment {name}.", hint="List them with: llmos status")
            return self.deployments.canary(caller, name, action)

    @contextmanager
    def _audited(self, caller: auth.Caller, action: str, target: str) -> Iterator[dict]:
        """Name a refused call's action and target; the REST app's Guard writes its audit row
        (`_guard`: every answer of 400 or more is audited there, in a transaction of its own)."""
        note: dict = {}
        try:
            yield note
        except LlmosError as exc:
            if not note.get("audited"):
                exc.audit = (action, target)  # type: ignore[attr-defined]
            raise


def _readable_job(conn: Connection, caller: auth.Caller | None, job_id: int) -> Any:
    """Job `job_id`'s row, or a 404 when there is none or it is in a project `caller` (when
    given) may not read: the same answer, so that another project's job ids do not leak."""
    row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
    scope = None if caller is None else projects.readable_projects(conn, caller)
    if row is None or (scope is not None and row.project not in scope):
        raise NotFound(f"no job {job_id}.", hint="List jobs with: llmos jobs ls")
    return row


def _with_output(job: Any, job_id: int) -> tuple[Any, str | None]:
    """Give a training job without `output` a folder of its own: runs/NAME-ID."""
    if isinstance(job, CommandJob) or not hasattr(job, "output"):
        return job, None
    from llmos.paths import runs_dir

    if job.output is None:
        job = job.model_copy(update={"output": runs_dir() / f"{job.name}-{job_id}"})
    return job, str(Path(job.output).expanduser().resolve())


def _check_run_dir(conn: Connection, job_id: int, run_dir: str) -> None:
    from llmos.run._runfile import read as read_runfile

    busy = conn.execute(select(jobs.c.id, jobs.c.state).where(
        jobs.c.run_dir == run_dir, jobs.c.id != job_id,
        jobs.c.state.notin_([s.value for s in TERMINAL]))).first()
    if busy is not None:
        raise Conflict(f"job {busy.id} ({busy.state}) already writes to {run_dir}.",
                       hint="Give this job another folder with output=PATH or name=NEW_NAME.")
    if read_runfile(Path(run_dir)).get("status") == "finished":
        raise Conflict(f"{run_dir} holds a finished run.",
                       hint="Choose another folder with output=PATH or name=NEW_NAME (the finished run is kept).")
