"""The scheduling loop: reap exits → stop what must stop → ask the policy → apply its decisions.

One `tick` is a thin shell around pure parts (`after_exit`, `build_snapshot`, `schedule`,
`assign_cores`). Each decision is written through `transition` before it is acted on: a job is
STARTING (with its placement) before its process is spawned, PREEMPTED before its SIGTERM.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, insert, select, update

from llmos.control._db import read, write
from llmos.control._errors import Conflict
from llmos.control._metrics import observe_round
from llmos.control._outcome import after_exit
from llmos.control._projects import owners as project_owners
from llmos.control._schema import attempts, jobs
from llmos.control._secrets import with_secrets
from llmos.control._snapshot import assign_cores, build_snapshot, used_cores, waited_before
from llmos.control._states import JobState
from llmos.control._transition import transition
from llmos.errors import LlmosError
from llmos.executor import NODE, Cluster, Executor, Exit, Inventory, LocalExecutor, NotPlaced, kind_of
from llmos.scheduler import (
    Decision,
    Resources,
    allocation_by_group,
    decay_usage,
    policy_config,
    queued_by_group,
    schedule,
    update_owed,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from llmos.control._config import ControlConfig

__all__ = ["ControlLoop"]

_HOLDING = select(jobs).where(jobs.c.holds.is_(True))


class ControlLoop:
    def __init__(self, engine: Engine, inventory: Inventory | Cluster, config: ControlConfig,
                 executor: Executor | None = None, log: Any = print,
                 refresh: Callable[[], Cluster] | None = None) -> None:
        self.engine = engine
        self.cluster = inventory if isinstance(inventory, Cluster) else Cluster.of(inventory)
        self.refresh = refresh  # the hosts as they are now (Ray: nodes join and leave); None: fixed
        self.config = config
        self.policy = policy_config(config.policy)
        self.executor: Executor = executor or LocalExecutor()
        self.deployments: Any = None  # a DeploymentManager once deployments are wired in
        self.pipelines: Any = None  # a PipelineDriver (llmos.control._pipelines) once wired in
        self.sweeps: Any = None  # a SweepDriver (llmos.control._sweeps) once wired in
        self.log = log
        self.usage: dict[str, Resources] = {}
        self.owed: dict[str, float] = {}  # fair share owed to owners whose jobs could not be placed
        self._signalled: set[tuple[int, int]] = set()  # (job, attempt) already sent SIGTERM
        self._killed: set[tuple[int, int]] = set()  # (job, attempt) already said to be SIGKILLed
        self._last_s: float | None = None
        self._held: set[int] | None = None  # the cores last published to held_cores_file()

    # ---- start-up ------------------------------------------------------------------------------
    def recover(self) -> None:
        """After a restart: attempts whose process survived are adopted; the others are reaped
        on the first tick (retried from their checkpoints, or finished if they recorded exit 0)."""
        with read(self.engine) as conn:
            holding = conn.execute(_HOLDING).all()
        for row in holding:
            folder = self.executor.attempt_dir(row.id, row.attempt)
            handle = row.process
            if handle is None and (folder / "pid.json").is_file():
                # Spawned just before the crash, before the daemon could record it.
                handle = (folder / "pid.json").read_text()
                with write(self.engine) as conn:
                    conn.execute(update(jobs).where(jobs.c.id == row.id).values(process=handle))
            survived = handle is not None and self.executor.alive(handle)
            self.log(f"job {row.id} attempt {row.attempt}: "
                     + ("process survived, adopted" if survived else "process gone, will be reaped"))

    # ---- one round -----------------------------------------------------------------------------
    def tick(self, now_s: float | None = None) -> Decision:
        started_s = time.perf_counter()
        now = time.time() if now_s is None else now_s
        if self.refresh is not None:
            self.cluster = self.refresh()
        with read(self.engine) as conn:
            holding = conn.execute(_HOLDING).all()
        if self._reap(holding, now):
            with read(self.engine) as conn:
                holding = conn.execute(_HOLDING).all()
        self._stop(holding, now)
        if self.pipelines is not None:  # stages whose jobs ended move on; the next ones queue in this round
            self.pipelines.tick(now)
        if self.sweeps is not None:  # trials' evaluations reach the pruner; new trials queue in this round
            self.sweeps.tick(now)
        with read(self.engine) as conn:
            queued = conn.execute(select(jobs).where(and_(jobs.c.state == JobState.QUEUED.value,
                                                          jobs.c.not_before_s <= now))).all()
            waited = _waited(conn, queued)
            owners = project_owners(conn)  # each project's weight, guarantee and cap
        # Replicas are placed from the API thread too: snapshot and placement see one state of them.
        with self.deployments.lock if self.deployments is not None else nullcontext():
            extra = self.deployments.running(now) if self.deployments is not None else []
            waiting = self.deployments.waiting(now) if self.deployments is not None else []
            snapshot = build_snapshot(now, self.cluster, queued, holding, self.config.grace_s, extra, self.usage,
                                      self.owed, waiting, waited, owners)
            self._decay(snapshot, now)
            decision = schedule(snapshot, self.policy) if queued or waiting else Decision()
            held = self._apply(decision, {str(r.id): r for r in queued}, holding, now)
        if self.deployments is not None:
            self.deployments.tick(now)
        self._publish_held(held)
        observe_round(time.perf_counter() - started_s, len(decision.preempts))
        return decision

    def _publish_held(self, held: set[int]) -> None:
        """Tell processes started by hand beside the daemon which cores its work holds (read by
        llmos._threads), whenever that changes; atomic, so a reader never sees half a file."""
        if held == self._held or self.cluster.backend != "local":
            return
        import psutil

        from llmos.paths import held_cores_file

        path = held_cores_file()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "started_s": psutil.Process().create_time(),
                                   "held": sorted(held)}))
        os.replace(tmp, path)
        self._held = held

    def _reap(self, holding: list[Any], now: float) -> bool:
        changed = False
        for row in holding:
            folder = self.executor.attempt_dir(row.id, row.attempt)
            ended = self.executor.poll(row.process, folder) if row.process is not None else Exit(None, None)
            if ended is None:
                continue
            changed = True
            code, ended_s = ended
            outcome = after_exit(JobState(row.state), code, row.attempt, row.failures, row.max_retries, now,
                                 self.config.retry_base_s, self.config.retry_max_s,
                                 restarts=kind_of(row.kind).restarts)
            label = "ok" if code == 0 else ("stopped" if outcome.state == JobState.QUEUED and not outcome.failed
                                            else "failed" if outcome.failed else "cancelled")
            try:
                with write(self.engine) as conn:
                    conn.execute(update(attempts).where(attempts.c.job_id == row.id, attempts.c.number == row.attempt)
                                 .values(ended_s=ended_s or now, exit_code=code, outcome=label))
                    release = {"holds": False, "stop_s": None, "process": None, "exit_code": code}
                    if outcome.state is None:
                        conn.execute(update(jobs).where(jobs.c.id == row.id).values(**release))
                    else:
                        transition(conn, row.id, outcome.state, outcome.reason, now_s=now, expect=[JobState(row.state)],
                                   failures=row.failures + int(outcome.failed), not_before_s=outcome.not_before_s,
                                   **release)
            except Conflict:
                continue  # cancelled meanwhile: the next tick sees it as a cancelled job that exited
            self._signalled.discard((row.id, row.attempt))
            self._killed.discard((row.id, row.attempt))
            self.log(f"job {row.id}: {outcome.reason}")
        return changed

    def _stop(self, holding: list[Any], now: float) -> None:
        """SIGTERM jobs asked to stop (preempted, cancelled); SIGKILL them once the grace period is over."""
        for row in holding:
            if row.stop_s is None or row.process is None:
                continue
            if (row.id, row.attempt) not in self._signalled:
                self.executor.terminate(row.process)
                self._signalled.add((row.id, row.attempt))
            elif now > row.stop_s + self.config.grace_s:
                if (row.id, row.attempt) not in self._killed:  # sent again each round, said once
                    self.log(f"job {row.id}: still running {self.config.grace_s:g} s after SIGTERM; SIGKILL")
                    self._killed.add((row.id, row.attempt))
                self.executor.kill(row.process)

    def _apply(self, decision: Decision, queued: dict[str, Any], holding: list[Any], now: float) -> set[int]:
        """Carry out a decision; returns the local host's cores held afterwards by jobs and replicas."""
        for reject in decision.rejects:
            if self._owned(reject.job_id):
                continue  # a replica too big for the machine: its spawn reports that, not the queue
            with write(self.engine) as conn:
                transition(conn, int(reject.job_id), JobState.FAILED, f"rejected by the scheduler: {reject.reason}",
                           now_s=now, expect=[JobState.QUEUED])
        for preempt in decision.preempts:
            if self._owned(preempt.job_id):
                continue  # replicas are not preemptible; the policy never asks, but be safe
            with write(self.engine) as conn:
                transition(conn, int(preempt.job_id), JobState.PREEMPTED, f"preempted: {preempt.reason}", now_s=now,
                           stop_s=now)
            self.log(f"job {preempt.job_id}: preempted ({preempt.reason})")
        if decision.preempts:
            with read(self.engine) as conn:
                self._stop(conn.execute(_HOLDING).all(), now)
        used = used_cores(r.placement for r in holding)
        if self.deployments is not None:
            for node, cores in self.deployments.used_by_node().items():
                used.setdefault(node, set()).update(cores)
        for start in decision.starts:
            if self._owned(start.job_id):
                # A waiting replica fits in free room now (its preempted victims have exited). The
                # deployment owns its replicas: it spawns it at the end of this tick, not the loop.
                continue
            row = queued[start.job_id]
            self._start(row, assign_cores(start.placement, self.cluster, used), now)
        return used.get(NODE, set())

    def _owned(self, job_id: str) -> bool:
        return self.deployments is not None and self.deployments.owns(job_id)

    def _start(self, row: Any, placement: dict[str, Any], now: float) -> None:
        attempt = row.attempt + 1
        with write(self.engine) as conn:
            transition(conn, row.id, JobState.STARTING, f"attempt {attempt} placed on {_where(placement)}", now_s=now,
                       expect=[JobState.QUEUED], placement=json.dumps(placement), holds=True, attempt=attempt,
                       stop_s=None, process=None, exit_code=None)
            conn.execute(insert(attempts).values(job_id=row.id, number=attempt, started_s=now,
                                                 placement=json.dumps(placement)))
        try:
            job = with_secrets(self.engine, row.project, _job_model(row))  # for this launch only, never stored
            # The project picks the OS user an isolated job runs as (llmos.executor._jobuser).
            handle = self.executor.launch(row.id, attempt, job, {**placement, "project": row.project})
        except (LlmosError, OSError) as exc:
            ended = time.time()
            # Not placed (a chosen node left): a failed attempt, retried on the nodes there are then.
            retry = after_exit(JobState.RUNNING, None, attempt, row.failures, row.max_retries, ended,
                               self.config.retry_base_s, self.config.retry_max_s) if isinstance(exc, NotPlaced) \
                else None
            with write(self.engine) as conn:
                conn.execute(update(attempts).where(attempts.c.job_id == row.id, attempts.c.number == attempt)
                             .values(ended_s=ended, outcome="failed"))
                if retry is not None and retry.state == JobState.QUEUED:
                    transition(conn, row.id, JobState.QUEUED, f"{exc.message} {retry.reason}", now_s=ended,
                               holds=False, failures=row.failures + 1, not_before_s=retry.not_before_s)
                else:
                    transition(conn, row.id, JobState.FAILED, f"could not start: {exc}", now_s=ended, holds=False,
                               failures=row.failures + int(retry is not None))
            self.log(f"job {row.id}: could not start: {exc}")
            return
        try:
            with write(self.engine) as conn:
                transition(conn, row.id, JobState.RUNNING, f"attempt {attempt} running ({_what(handle)})",
                           now_s=time.time(), expect=[JobState.STARTING], process=handle)
                conn.execute(update(attempts).where(attempts.c.job_id == row.id, attempts.c.number == attempt)
                             .values(pid=json.loads(handle).get("pid")))
        except Conflict:  # cancelled while it was being spawned: record the process so that it is stopped
            with write(self.engine) as conn:
                conn.execute(update(jobs).where(jobs.c.id == row.id).values(process=handle))

    def _decay(self, snapshot: Any, now: float) -> None:
        """Each owner's decayed usage and owed share, for fair share between owners (as the simulator)."""
        elapsed = 0.0 if self._last_s is None else now - self._last_s
        self._last_s = now
        by_group = allocation_by_group(snapshot.running)
        held: dict[str, Resources] = {}
        for (_, owner), amount in by_group.items():
            held[owner] = held.get(owner, Resources()) + amount
        if self.policy.fair_share and self.policy.debt_horizon_s:
            self.owed = update_owed(self.owed, by_group, queued_by_group(snapshot.queue), snapshot.owners,
                                    snapshot.cluster.total, elapsed, self.policy.half_life_s)
        for owner in set(held) | set(self.usage):
            self.usage[owner] = decay_usage(self.usage.get(owner, Resources()), held.get(owner, Resources()),
                                            elapsed, self.policy.half_life_s)

    # ---- shutdown ------------------------------------------------------------------------------
    def stop_all(self, reason: str, timeout_s: float) -> None:
        """Preempt every running job (each checkpoints and goes back to the queue) and wait for them."""
        now = time.time()
        with read(self.engine) as conn:
            running = conn.execute(_HOLDING.where(jobs.c.state.in_(
                [JobState.RUNNING.value, JobState.STARTING.value]))).all()
        for row in running:
            try:
                with write(self.engine) as conn:
                    transition(conn, row.id, JobState.PREEMPTED, reason, now_s=now, stop_s=now)
            except Conflict:
                continue
        deadline, killed = time.monotonic() + timeout_s, False
        while True:
            with read(self.engine) as conn:
                holding = conn.execute(_HOLDING).all()
            if not holding:
                return
            now = time.time()
            self._reap(holding, now)
            self._stop(holding, now)
            if time.monotonic() > deadline:
                if killed:
                    return
                for row in holding:
                    if row.process:
                        self.executor.kill(row.process)
                deadline, killed = time.monotonic() + 5, True  # reap what SIGKILL ended, then give up
            time.sleep(0.1)


def _where(placement: dict[str, Any]) -> str:
    """'cores [0, 1]' on one host; '10.0.0.2 (1 CPUs), 10.0.0.3 (1 CPUs)' across hosts."""
    workers = placement["workers"]
    if {w.get("node", NODE) for w in workers} == {NODE}:
        return f"cores {[c for w in workers for c in w['cores']]}"
    return ", ".join(f"{w.get('address', w['node'])} ({len(w['cores'])} CPUs)" for w in workers)


def _what(handle: str) -> str:
    info = json.loads(handle)
    if "pid" not in info:
        return f"{len(info.get('workers', []))} Ray worker(s)"
    return f"pid {info['pid']}, started warm" if info.get("warm") else f"pid {info['pid']}"


def _job_model(row: Any) -> Any:
    from llmos.spec import CommandJob, validate_dict

    raw = json.loads(row.spec)
    return CommandJob.model_validate(raw) if raw.get("kind") == "command" else validate_dict(raw, f"job {row.id}")


def _waited(conn: Any, queued: list[Any]) -> dict[int, float]:
    """Earlier time in the queue of the queued rows that ran before (requeued), for aging."""
    ids = [row.id for row in queued if row.attempt]
    if not ids:
        return {}
    runs: dict[int, list[tuple[float, float | None]]] = {}
    for a in conn.execute(select(attempts.c.job_id, attempts.c.started_s, attempts.c.ended_s)
                          .where(attempts.c.job_id.in_(ids)).order_by(attempts.c.job_id, attempts.c.number)):
        runs.setdefault(a.job_id, []).append((a.started_s, a.ended_s))
    return {row.id: waited_before(row.submit_s, runs.get(row.id, ())) for row in queued if row.attempt}
