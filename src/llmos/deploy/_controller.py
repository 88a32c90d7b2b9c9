"""A deployment: a front router, replicas of one model revision, autoscaling and rolling updates.

The controller is the thin, stateful shell around the pure decisions (`decide_replicas`,
`reconcile`, `front_plan`; the front process applies `pick_replica`). `tick(now)` never blocks: it
looks at the processes and at what the front router reported, decides, acts by starting
processes and sending signals, and publishes the replica set to the front. The front and the
replicas are processes of their own: they keep serving while no controller runs.

A roll to a job with a `canary:` section is a canary instead (`_canary.py`): the new version's
replicas join beside the current ones, the front splits the traffic between them by weight, and
each tick judges the step on what the front measured (`decide_canary`), moving to the next
share, promoting (the roll then finishes as any roll does) or rolling back (the new replicas
drain, all traffic goes back). Each such change is queued for the audit log (`take_audit`).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path

from llmos.deploy._autoscale import ScaleDecision, ScalingConfig, ScalingSnapshot, decide_replicas
from llmos.deploy._canary import canary_replicas, decide_canary
from llmos.deploy._canary_run import CanaryRun
from llmos.deploy._errors import DeployError
from llmos.deploy._front_keeper import FrontKeeper
from llmos.deploy._process import Spawn, default_spawn
from llmos.deploy._reconcile import Plan, reconcile, should_abort
from llmos.deploy._replica import pinned_job, registry_version, revision_of
from llmos.deploy._routes import FrontReport, RouteSet
from llmos.deploy._split import Split
from llmos.deploy._state import SavedState, load_state
from llmos.deploy._status import DeploymentStatus, RolloutStatus
from llmos.deploy._supervisor import AdoptRemote, Supervisor
from llmos.deploy._table import ReplicaTable
from llmos.spec import ServeJob

__all__ = ["DeploymentController"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
AUDIT_KEPT = 100  # `python -m llmos.deploy` keeps no audit log: its canary notes are events only


class DeploymentController:
    def __init__(self, name: str, job: ServeJob, *, state_dir: Path, front_port: int,
                 spawn: Spawn | None = None, adopt_remote: AdoptRemote | None = None,
                 resolve_model: Callable[[str, str | None], str] | None = None,
                 load_window_s: float = 5.0, max_surge: int = 1) -> None:
        """`resolve_model(ref, tracking_uri)` pins a reference to NAME/N (default: the registry);
        `load_window_s` is how far back the autoscaler's load and latency figures look;
        `max_surge` is how many replicas a roll may run above the desired count; `spawn` starts a
        replica (default: a local process), `adopt_remote` finds again one that `spawn` started on
        another machine (see `Supervisor`)."""
        problems = _check_args(name, job, front_port, load_window_s, max_surge)
        if problems:
            raise DeployError(f"deployment '{name}' cannot be created: " + "; ".join(problems) + ".",
                              hint="Fix the values named above.")
        self.name, self.job = name, job
        self.state_dir = Path(state_dir)
        self._resolve = resolve_model or registry_version
        self._window_s, self._max_surge = load_window_s, max_surge
        self._lock = threading.RLock()
        self._table = ReplicaTable()
        self._sup = Supervisor(name, self._table, self.state_dir, spawn or default_spawn, adopt_remote)
        self._front = FrontKeeper(name, self.state_dir, job.server.host, front_port)
        self._started = False
        self._events: deque[str] = deque(maxlen=20)
        self._events_total = 0
        self._decision = ScaleDecision(job.replicas.min, "starting", None)
        self._last_scale_up_s: float | None = None
        self._rollout: RolloutStatus | None = None
        self._target = ""
        self._asked: dict[str, ServeJob] = {}  # revision -> the job as given (model not yet pinned)
        self._canary: CanaryRun | None = None  # the latest canary, running or ended
        self._report: FrontReport | None = None  # the front's latest report
        # (action, detail) for the audit log, since take_audit(); the newest AUDIT_KEPT where no one takes them
        self._audit: deque[tuple[str, str]] = deque(maxlen=AUDIT_KEPT)

    @property
    def front_port(self) -> int:
        """The front address's port (the one picked, once started with 0)."""
        return self._front.port

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Bring the front router up and start the minimum replicas, adopting the live front and
        replicas a previous controller recorded in `state_dir` (same pid and process start time)."""
        with self._lock:
            if self._started:
                raise DeployError(f"deployment '{self.name}' is already started.",
                                  hint="Call tick() to keep it going, or stop() first.")
            saved = load_state(self.state_dir)
            if saved is not None and saved.name != self.name:
                raise DeployError(f"{self.state_dir} holds deployment '{saved.name}', not '{self.name}'.",
                                  hint="Give each deployment its own state folder.")
            # A restarted daemon keeps serving the version it served, even if the alias moved while it
            # was down: only roll() moves a deployment to another version.
            version = _kept_version(saved, self.job) or self._resolve(self.job.model, self.job.tracking_uri)
            target_job = pinned_job(self.job, version)
            self._events_from(self._front.open(saved.front if saved is not None else None))
            try:
                desired = self.job.replicas.min
                if saved is not None:
                    desired = saved.desired
                    self._events_from(self._sup.adopt(saved))
                self._target = self._sup.add_revision(target_job)
                self._asked[self._target] = self.job
                self._resume_canary(saved)
                trying = {self._canary.canary} if self._canary is not None else set()
                if self._sup.revisions_running() - {self._target} - trying:  # adopted in the middle of a roll
                    self._rollout = RolloutStatus(sorted(self._sup.revisions_running() - {self._target} - trying),
                                                  self._target, "rolling")
                self._decision = ScaleDecision(min(max(desired, self.job.replicas.min), self.job.replicas.max),
                                               "started", None)
                # The front serves before the first replica starts: a request meanwhile gets a clear 503.
                self._events_from(self._front.launch(self._routes(), wait=True))
            finally:
                self._front.close()
            self._started = True
            if self.job.canary is not None and saved is None:
                self._event("canary: applies to the next version deployed here; this first one serves all traffic")
            self._read_report()
            self._apply_plan(now=None)
            self._front.publish(self._routes())
            self._save()

    def tick(self, now: float) -> None:
        """Keep the front running, reap and restart replicas, autoscale, move a roll forward and
        drain what leaves; then tell the front the replica set."""
        with self._lock:
            if not self._started:
                return
            self._events_from(self._front.keep(now, self._routes()))
            self._read_report()
            self._events_from(self._sup.check_processes(now))
            self._step_canary(now)
            self._check_rollout_failures()
            self._autoscale(now)
            self._apply_plan(now)
            self._events_from(self._sup.advance_drains(now, self.job.server.drain_timeout_s))
            self._finish_rollout()
            self._front.publish(self._routes())
            self._save()

    def roll(self, job: ServeJob) -> None:
        """Roll to `job` (usually the same reference after its alias moved): new replicas start,
        join routing when ready, then the old ones drain and stop, one surge step at a time."""
        with self._lock:
            problems = _check_args(self.name, job, self.front_port, self._window_s, self._max_surge)
            if problems:
                raise DeployError(f"cannot roll '{self.name}': " + "; ".join(problems) + ".",
                                  hint="Fix the values named above.")
            version = self._resolve(job.model, job.tracking_uri)
            target = revision_of(pinned_job(job, version))
            if self._canary is not None and self._canary.watching:
                raise DeployError(f"deployment '{self.name}' is trying {self._canary.canary} on part of its traffic.",
                                  hint=f"Promote it or roll it back first: llmos deploy promote|rollback {self.name}")
            if target == self._target:
                self.job = job
                self._event(f"roll to {target}: already serving it")
                return
            if job.canary is not None and self._begin_canary(job, version):
                return
            self.job = job
            old = sorted(self._sup.revisions_running() - {target})
            self._sup.reset_failures(target)  # a roll given up before may be tried again
            self._target = self._sup.add_revision(pinned_job(job, version))
            self._asked[self._target] = job
            self._rollout = RolloutStatus(old, self._target, "rolling")
            self._event(f"rolling {', '.join(old) or 'nothing'} -> {self._target}")

    def promote(self) -> str:
        """Promote the running canary now, whatever its step: the roll to it finishes as any roll."""
        with self._lock:
            run = self._running_canary("promote")
            self._promote(run, f"promoted by hand at step {run.step + 1} ({run.weight:.0%})")
            return run.verdict

    def rollback(self) -> str:
        """Roll the running canary back now: all traffic to the current version, the new replicas drain."""
        with self._lock:
            run = self._running_canary("roll back")
            self._roll_back(run, f"rolled back by hand at step {run.step + 1} ({run.weight:.0%})")
            return run.verdict

    def take_audit(self) -> list[tuple[str, str]]:
        """The canary changes since the last call, as (action, detail) for the audit log."""
        with self._lock:
            taken = list(self._audit)
            self._audit.clear()
            return taken

    def stop(self, drain_timeout_s: float) -> None:
        """Stop routing, let in-flight requests finish (up to `drain_timeout_s`), stop every
        replica and the front router, and forget the deployment's state."""
        with self._lock:
            saved = load_state(self.state_dir) if not self._started and not self._sup.records() else None
            if saved is not None:  # a controller that never started: stop what an earlier one left running
                self._events_from(self._sup.adopt(saved))
                self._events_from(self._front.adopt_saved(saved.front) if saved.front is not None else [])
            self._sup.stop_all(drain_timeout_s, sync=self._sync_front)
            self._events_from(self._front.stop())
            self._started = False
            self._sup.forget()
            self._front.forget()

    def detach(self) -> None:
        """Leave the front router and the replicas running and recorded, as a daemon that goes
        away does, for a new controller (a restarted daemon) to adopt with `start()`."""
        with self._lock:
            if self._started:
                self._save()
                self._started = False

    def status(self) -> DeploymentStatus:
        with self._lock:
            replicas = self._sup.replica_statuses()
            target_job = self._sup.job_of(self._target) if self._target else None
            return DeploymentStatus(
                name=self.name, front_url=f"http://{_reachable(self.job.server.host)}:{self.front_port}",
                model=self.job.model,
                model_version=target_job.model if target_job else "", revision=self._target,
                desired=self._decision.desired, min_replicas=self.job.replicas.min,
                max_replicas=self.job.replicas.max, ready=sum(r.state == "ready" for r in replicas),
                scaling_reason=self._decision.reason, replicas=replicas, rollout=self._rollout,
                events=list(self._events), events_total=self._events_total,
                front_pid=self._front.proc.pid if self._front.alive() and self._front.proc else None,
                canary=self._canary.status() if self._canary is not None else None,
                start_failures=self._sup.failures(self._target) if self._target else 0)

    # --- the front --------------------------------------------------------------------------------
    def _routes(self) -> RouteSet:
        routes = self._table.routes(self.name, self._window_s)
        return RouteSet(routes.name, routes.load_window_s, routes.routes, self._split())

    def _split(self) -> Split | None:
        """The split the front applies: the canary's while it runs; after a rollback, everything to
        the current version until the new replicas are gone (they drain; nothing new may reach them)."""
        run = self._canary
        if run is None or run.state == "promoted" or run.canary == self._target:  # rolled to it since
            return None
        if run.watching or run.canary in self._sup.revisions_running():
            return run.split()
        return None

    def _read_report(self) -> None:
        report = self._front.report()
        self._report = report
        if report is not None:
            self._table.apply_report(report)
        elif not self._front.alive():
            self._table.front_gone()

    def _sync_front(self) -> None:
        self._front.publish(self._routes())
        self._read_report()

    def _save(self) -> None:
        run = self._canary
        self._sup.save(self._target, self._decision.desired, self._front.saved(),
                       run.saved() if run is not None and run.watching else None)

    # --- one tick's steps -------------------------------------------------------------------------
    def _autoscale(self, now: float) -> None:
        auto = self.job.autoscale
        config = ScalingConfig(self.job.replicas.min, self.job.replicas.max, auto.target_outstanding,
                               auto.max_p95_ms, auto.upscale_cooldown_s, auto.downscale_cooldown_s)
        snapshot = ScalingSnapshot(self._sup.loads(), self._decision.desired,
                                   self._last_scale_up_s, self._decision.low_since_s)
        decision = decide_replicas(snapshot, config, now)
        if decision.desired > self._decision.desired:
            self._last_scale_up_s = now
        if decision.desired != self._decision.desired:
            self._event(decision.reason)
        self._decision = decision

    def _apply_plan(self, now: float | None) -> None:
        views, run = self._sup.views(), self._canary
        if run is not None and run.watching:  # two deployments in one: the current version's and the canary's
            new = [v for v in views if v.revision == run.canary]
            views = [v for v in views if v.revision != run.canary]
            self._apply(reconcile(new, run.canary, canary_replicas(self._decision.desired, run.weight),
                                  self._max_surge), run.canary, now)
        self._apply(reconcile(views, self._target, self._decision.desired, self._max_surge), self._target, now)

    def _apply(self, plan: Plan, revision: str, now: float | None) -> None:
        for replica_id in plan.drain:
            self._sup.drain(replica_id, now)
        if plan.start:
            self._events_from(self._sup.start_replicas(revision, plan.start, now))

    # --- the canary -------------------------------------------------------------------------------
    def _begin_canary(self, job: ServeJob, version: str) -> bool:
        """Start trying `job` on part of the traffic; False when there is nothing to compare it with
        (no ready replica of the current version), and the roll goes on as a plain one."""
        assert job.canary is not None
        if not any(v.revision == self._target and v.phase == "ready" for v in self._sup.views()):
            self._event("canary asked, but no replica of the current version is ready: rolling instead")
            return False
        if self._rollout is not None and self._rollout.state == "rolling":
            raise DeployError(f"deployment '{self.name}' is rolling to {self._rollout.to_revision}.",
                              hint="Deploy again once the roll is done (llmos deploy show NAME says when).")
        pinned = pinned_job(job, version)
        self._sup.reset_failures(revision_of(pinned))
        revision = self._sup.add_revision(pinned)
        self._asked[revision] = job
        self._canary = CanaryRun(self._target, revision, job.canary)
        note = f"canary {revision}: {job.canary.steps[0]:g}% of the traffic, {self._target} the rest"
        self._event(note)
        self._audit.append(("deploy.canary", note))
        return True

    def _resume_canary(self, saved: SavedState | None) -> None:
        """Go on with the canary a previous controller ran, if it tried a version against the one
        this controller serves; otherwise its replicas are old ones, and drain."""
        if saved is None or saved.canary is None or saved.canary.get("canary") not in saved.jobs:
            return
        run = CanaryRun.resumed(saved.canary, self._target)
        if run is None:
            self._event(f"dropped the canary of {saved.canary.get('canary')}: this deployment now serves "
                        f"{self._target}, not {saved.canary.get('stable')}")
            return
        self._canary = run
        self._event(f"resumed the canary of {run.canary} at step {run.step + 1} ({run.weight:.0%})")

    def _step_canary(self, now: float) -> None:
        run = self._canary
        if run is None or not run.watching:
            return
        figures = run.observe(self._report, now, self._sup.failures(run.canary))
        decision = decide_canary(figures, run.spec, run.step)
        run.verdict = decision.reason
        if decision.action == "next":
            run.begin_step(run.step + 1)
            self._event(f"canary {run.canary}: {decision.reason}")
            self._audit.append(("deploy.canary.step", decision.reason))
        elif decision.action == "promote":
            self._promote(run, decision.reason)
        elif decision.action == "rollback":
            self._roll_back(run, f"rolled back: {decision.reason}")

    def _running_canary(self, what: str) -> CanaryRun:
        if self._canary is None or not self._canary.watching:
            raise DeployError(f"deployment '{self.name}' has no canary to {what}.",
                              hint=f"Start one with: llmos deploy MODEL --name {self.name} --canary 10%")
        return self._canary

    def _promote(self, run: CanaryRun, verdict: str) -> None:
        run.end("promoted", verdict)
        old, self._target = self._target, run.canary
        self.job = self._asked.get(run.canary) or self._sup.job_of(run.canary)  # pinned, after a restart
        self._rollout = RolloutStatus([old], run.canary, "rolling")
        self._event(f"canary {run.canary}: {verdict}")
        self._audit.append(("deploy.promote", f"{old} -> {run.canary}: {verdict}"))

    def _roll_back(self, run: CanaryRun, verdict: str) -> None:
        run.end("rolled_back", verdict)
        self._event(f"canary {run.canary}: {verdict}")
        self._audit.append(("deploy.rollback", f"{run.canary} -> {run.stable}: {verdict}"))

    def _check_rollout_failures(self) -> None:
        if self._rollout is None or self._rollout.state != "rolling":
            return
        old_ready = Counter(v.revision for v in self._sup.views() if v.revision != self._target and v.phase == "ready")
        if should_abort(self._sup.failures(self._target), sum(old_ready.values())):
            back = old_ready.most_common(1)[0][0]  # the old revision that serves most now
            reason = f"replicas of {self._target} kept exiting before ready; kept {back}"
            self._event(f"roll failed: {reason}")
            self._rollout = RolloutStatus(self._rollout.from_revisions, self._target, "failed", reason)
            self._target = back
            self.job = self._asked.get(back, self.job)

    def _finish_rollout(self) -> None:
        if self._rollout is not None and self._rollout.state == "rolling" and \
                self._sup.revisions_running() == {self._target}:
            self._rollout = RolloutStatus(self._rollout.from_revisions, self._target, "done")
            self._event(f"rolled to {self._target}")

    def _events_from(self, notes: list[str]) -> None:
        for note in notes:
            self._event(note)

    def _event(self, text: str) -> None:
        self._events.append(f"{time.strftime('%H:%M:%S')} {text}")
        self._events_total += 1


def _kept_version(saved: SavedState | None, job: ServeJob) -> str | None:
    """The version the saved deployment serves, if `job` asks for the same thing it did."""
    if saved is None or saved.target not in saved.jobs:
        return None
    version = str(saved.jobs[saved.target].get("model", ""))
    return version if revision_of(pinned_job(job, version)) == saved.target else None


def _reachable(host: str) -> str:
    # A front bound to every interface is reached locally through loopback.
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _check_args(name: str, job: ServeJob, front_port: int, window_s: float, max_surge: int) -> list[str]:
    problems = []
    if not _NAME.match(name):
        problems.append(f"name {name!r} must start with a letter or digit and hold only letters, digits, _ . -")
    if not 0 <= front_port <= 65535:
        problems.append(f"front_port {front_port} must be within 0..65535 (0 picks a free port)")
    if window_s <= 0:
        problems.append(f"load_window_s must be above 0, got {window_s}")
    if max_surge < 1:
        problems.append(f"max_surge must be at least 1, got {max_surge}")
    if not isinstance(job, ServeJob):
        problems.append(f"job must be a ServeJob (kind: serve), got {type(job).__name__}")
    return problems
