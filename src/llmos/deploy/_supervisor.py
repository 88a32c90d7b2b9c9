"""The replica supervisor: starts, watches, restarts, drains and stops replica processes.

It acts on what the controller decided and reports each change as a one-line note. Removal is
always a drain: out of routing first, SIGTERM once the front router confirmed the drain and has
nothing in flight on the replica (or the drain timeout passed), SIGKILL only if it then overstays
its own drain.
A spawn that raises `NoCapacity` is a replica waiting for capacity, not a failed start: no
backoff, no count toward giving up a roll; it is tried again on the next tick.
A spawn may start the replica on another machine (a Ray node): it then returns a `RemoteReplica`,
which says where the replica listens, and a restarted daemon adopts it through `adopt_remote`.
One code path either way: the same starts, probes, drains and replacements.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from llmos.deploy._autoscale import ReplicaLoad
from llmos.deploy._errors import NoCapacity
from llmos.deploy._process import ForkedReplica, ProcHandle, RemoteReplica, ReplicaProc, Spawn, adopt, free_port
from llmos.deploy._reconcile import ReplicaView, restart_delay_s
from llmos.deploy._replica import REPLICA_HOST, replica_argv, replica_env, revision_of, write_replica_job
from llmos.deploy._state import SavedFront, SavedReplica, SavedState, save_state, state_path
from llmos.deploy._status import ReplicaStatus
from llmos.deploy._table import ReplicaRecord, ReplicaTable
from llmos.spec import ServeJob

__all__ = ["KEEP_LOGS", "KILL_GRACE_S", "READY_TIMEOUT_S", "UNHEALTHY_RESTART_S", "Supervisor"]

READY_TIMEOUT_S = 300.0  # loading a large model from the registry on a CPU can take minutes
UNHEALTHY_RESTART_S = 30.0  # a ready replica failing its probes this long is hung: replace it
KILL_GRACE_S = 5.0  # past its own drain timeout, a replica that still runs gets SIGKILL
KEEP_LOGS = 50  # replica logs kept in the state folder, the newest ones


# (the saved replica, its log file) -> the replica, if it still runs
AdoptRemote = Callable[[SavedReplica, Path], "RemoteReplica | None"]


class Supervisor:
    def __init__(self, name: str, table: ReplicaTable, state_dir: Path, spawn: Spawn,
                 adopt_remote: AdoptRemote | None = None) -> None:
        self.name, self._table, self._dir, self._spawn = name, table, state_dir, spawn
        self._adopt_remote = adopt_remote  # replicas a spawn started elsewhere (`RemoteReplica`): by name
        self._jobs: dict[str, ServeJob] = {}  # revision -> the pinned job its replicas run
        self._failures: dict[str, int] = {}  # revision -> replicas that died in a row
        self._next_start_s = float("-inf")
        self._seq = 1
        self._saved = ""
        self._waiting_note = ""  # the last "waits for capacity" note, so that it is said once

    # --- revisions --------------------------------------------------------------------------------
    def add_revision(self, pinned: ServeJob) -> str:
        revision = revision_of(pinned)
        self._jobs[revision] = pinned
        return revision

    def job_of(self, revision: str) -> ServeJob:
        return self._jobs[revision]

    def revisions_running(self) -> set[str]:
        return {r.revision for r in self._table.records()}

    def failures(self, revision: str) -> int:
        return self._failures.get(revision, 0)

    def reset_failures(self, revision: str) -> None:
        self._failures.pop(revision, None)

    def records(self) -> list[ReplicaRecord]:
        return self._table.records()

    # --- what the decisions read ------------------------------------------------------------------
    def views(self) -> list[ReplicaView]:
        return [ReplicaView(r.replica_id, r.revision, r.phase, r.outstanding, r.started_s or 0.0)  # type: ignore[arg-type]
                for r in self._table.records()]

    def loads(self) -> tuple[ReplicaLoad, ...]:
        """The load the front measured on each routable replica, over the window the routes name."""
        return tuple(ReplicaLoad(r.mean_outstanding, r.p95_ms) for r in self._table.records() if r.routable)

    # --- acting ----------------------------------------------------------------------------------
    def start_replicas(self, revision: str, count: int, now: float | None) -> list[str]:
        if now is not None and now < self._next_start_s:
            return []
        job, notes, waiting = self._jobs[revision], [], []
        for _ in range(count):
            # The id is taken only by a start or a failed start: a replica that waits keeps its id.
            replica_id, port = f"r{self._seq}", self._free_port()
            job_file = write_replica_job(job, port, self._dir / "replicas" / f"{replica_id}.json")
            log_path = self._dir / "logs" / f"{replica_id}.log"
            try:
                started = self._spawn(replica_argv(job_file), replica_env(self.name, replica_id, job), log_path)
            except NoCapacity as exc:  # not a failure: the spawn recorded the demand; try again next tick
                waiting.append(exc.wanting)
                continue
            except Exception as exc:  # the spawn may be the control plane's: a failure is one failed start
                self._seq += 1
                delay_s = self._record_failure(revision, now or 0.0)
                notes.append(f"could not start {replica_id}: {exc}; trying again in {delay_s:.1f} s")
                break
            self._seq += 1
            if isinstance(started, subprocess.Popen | ProcHandle):  # on this machine: a child, or forked warm
                handle: ReplicaProc = ProcHandle(started.pid, started) if isinstance(started, subprocess.Popen) \
                    else started
                host, where = REPLICA_HOST, f"port {port}"
            else:  # started elsewhere, listening where it says
                handle, host, port = started, started.host, started.port
                where = f"{host}:{port}"
            self._table.add(ReplicaRecord(replica_id, revision, port, handle, now, host=host))
            warm = ", started warm" if isinstance(handle, ForkedReplica) else ""
            notes.append(f"started {replica_id} ({job.model}) pid {handle.pid} on {where}{warm}")
        notes.extend(self._waiting(waiting))
        self._prune_logs()
        return notes

    def _waiting(self, wanting: list[str]) -> list[str]:
        """The note that replicas wait for capacity: once when the wait begins or changes, not every tick."""
        if not wanting:
            self._waiting_note = ""
            return []
        first = f"r{self._seq}"
        note = (f"{first} waits for {wanting[0]}" if len(wanting) == 1 else
                f"{len(wanting)} replicas from {first} wait for {wanting[0]} each")
        if note == self._waiting_note:
            return []
        self._waiting_note = note
        return [note]

    def _prune_logs(self) -> None:
        # A replica that keeps crashing gets a new id, and a log, every time: keep the latest few.
        running = {f"{r.replica_id}.log" for r in self._table.records()}
        logs = sorted((self._dir / "logs").glob("r*.log"), key=lambda p: int(p.stem[1:]) if p.stem[1:].isdigit() else 0)
        for path in logs[:-KEEP_LOGS]:
            if path.name not in running:
                path.unlink(missing_ok=True)
                path.with_suffix(".exit.json").unlink(missing_ok=True)  # a warm replica's exit status

    def _free_port(self) -> int:
        # The OS may hand out a port again before the replica it was picked for has bound it.
        taken = {r.port for r in self._table.records()}
        port = free_port()
        while port in taken:
            port = free_port()
        return port

    def drain(self, replica_id: str, now: float | None) -> None:
        self._table.begin_drain(replica_id, now)

    def check_processes(self, now: float) -> list[str]:
        notes = []
        for r in self._table.records():
            r.started_s = now if r.started_s is None else r.started_s
            if not r.proc.alive():
                self._table.remove(r.replica_id)
                (self._dir / "replicas" / f"{r.replica_id}.json").unlink(missing_ok=True)
                if r.draining:
                    notes.append(f"{r.replica_id} stopped")
                    continue
                delay_s = self._record_failure(r.revision, now)
                code = r.proc.exit_code()
                notes.append(f"{r.replica_id} (pid {r.proc.pid}) exited{'' if code is None else f' with code {code}'}"
                             f"{'' if r.ever_ready else ' before it was ready'}; replacing it in {delay_s:.1f} s "
                             f"(log: {self._dir / 'logs' / f'{r.replica_id}.log'})")
            elif not r.draining:
                notes.extend(self._check_health(r, now))
        return notes

    def _check_health(self, r: ReplicaRecord, now: float) -> list[str]:
        if r.ever_ready:
            self._failures[r.revision] = 0
        if not r.ever_ready and now - (r.started_s or now) > READY_TIMEOUT_S:
            r.proc.signal(signal.SIGKILL)
            return [f"{r.replica_id} not ready after {READY_TIMEOUT_S:g} s: killed"]
        if r.ever_ready and not r.healthy:
            r.unhealthy_since_s = now if r.unhealthy_since_s is None else r.unhealthy_since_s
            if now - r.unhealthy_since_s > UNHEALTHY_RESTART_S:
                r.proc.signal(signal.SIGKILL)
                return [f"{r.replica_id} failed its readiness probes for {UNHEALTHY_RESTART_S:g} s: killed"]
        else:
            r.unhealthy_since_s = None
        return []

    def _record_failure(self, revision: str, now: float) -> float:
        self._failures[revision] = self._failures.get(revision, 0) + 1
        delay_s = restart_delay_s(self._failures[revision])
        self._next_start_s = now + delay_s
        return delay_s

    def advance_drains(self, now: float, drain_timeout_s: float) -> list[str]:
        notes = []
        for r in self._table.records():
            if not r.draining:
                continue
            r.drain_started_s = now if r.drain_started_s is None else r.drain_started_s
            if r.term_sent_s is None:
                if r.drain_done or now - r.drain_started_s >= drain_timeout_s:
                    r.proc.signal(signal.SIGTERM)
                    r.term_sent_s = now
            elif now - r.term_sent_s >= drain_timeout_s + KILL_GRACE_S:
                r.proc.signal(signal.SIGKILL)
                notes.append(f"{r.replica_id} did not exit after SIGTERM: killed")
        return notes

    def stop_all(self, drain_timeout_s: float, sync: Callable[[], None]) -> None:
        """Drain every replica, then stop it; `sync` tells the front and reads what it reports."""
        records = self._table.records()
        if not records:
            return
        for r in records:
            self._table.begin_drain(r.replica_id, None)
        deadline = time.monotonic() + drain_timeout_s
        sync()
        while not all(r.drain_done for r in records) and time.monotonic() < deadline:
            time.sleep(0.05)
            sync()
        for r in records:
            r.proc.signal(signal.SIGTERM)
        for r in records:
            if not r.proc.wait(max(1.0, deadline - time.monotonic()) + KILL_GRACE_S):
                r.proc.signal(signal.SIGKILL)
                r.proc.wait(KILL_GRACE_S)
            self._table.remove(r.replica_id)

    # --- persistence -----------------------------------------------------------------------------
    def adopt(self, saved: SavedState) -> list[str]:
        self._seq = max(self._seq, saved.next_replica)
        for revision, data in saved.jobs.items():
            self._jobs[revision] = ServeJob.model_validate(data)
        notes = []
        for s in saved.replicas:
            handle = self._adopt_one(s) if s.revision in self._jobs else None
            if handle is None:
                notes.append(f"{s.replica_id} (pid {s.pid}) no longer runs")
                continue
            self._table.add(ReplicaRecord(s.replica_id, s.revision, s.port, handle, None, draining=s.draining,
                                          host=s.host))
            # Probed now, before the first plan: an adopted replica not yet known to be ready counts as
            # starting, and an old-revision one that is starting is kept only until `desired` others are
            # ready: after a restart mid-roll (or with an edited spec) it would be drained too early.
            ready = _answers_ready(s.host, s.port)
            self._table.set_probed(s.replica_id, ready)
            where = f"port {s.port}" if s.actor is None else f"{s.host}:{s.port}"
            notes.append(f"adopted {s.replica_id} (pid {s.pid}, {where}{'' if ready else ', not ready yet'})")
        return notes

    def _adopt_one(self, s: SavedReplica) -> ReplicaProc | None:
        if s.actor is None:
            return adopt(s.pid, s.started_at)
        if self._adopt_remote is None:
            return None
        return self._adopt_remote(s, self._dir / "logs" / f"{s.replica_id}.log")

    def save(self, target: str, desired: int, front: SavedFront | None, canary: dict | None = None) -> None:
        records = self._table.records()
        keep = {target} | {r.revision for r in records} | ({canary["canary"]} if canary else set())
        state = SavedState(
            name=self.name, target=target, desired=desired, next_replica=self._seq,
            jobs={rev: job.model_dump(mode="json") for rev, job in self._jobs.items() if rev in keep},
            replicas=[SavedReplica(r.replica_id, r.proc.pid, r.proc.started_at or 0.0, r.port, r.revision, r.draining,
                                   r.host, r.proc.key if isinstance(r.proc, RemoteReplica) else None)
                      for r in records], front=front, canary=canary)
        text = json.dumps(asdict(state), sort_keys=True)
        if text != self._saved:  # most ticks change nothing: skip the write
            save_state(self._dir, state)
            self._saved = text

    def forget(self) -> None:
        state_path(self._dir).unlink(missing_ok=True)
        self._saved = ""

    def replica_statuses(self) -> list[ReplicaStatus]:
        out = []
        for r in sorted(self._table.records(), key=lambda r: int(r.replica_id[1:])):
            state = ("draining" if r.draining else "ready" if r.routable else
                     "unhealthy" if r.ever_ready else "starting")
            log_path = str(self._dir / "logs" / f"{r.replica_id}.log")
            out.append(ReplicaStatus(r.replica_id, r.proc.pid, r.port, self._jobs[r.revision].model, r.revision,
                                     state, r.outstanding, r.dispatched, log_path, r.host))
        return out


def _answers_ready(host: str, port: int, timeout_s: float = 2.0) -> bool:
    import httpx  # here: `import llmos.deploy` stays free of the HTTP stack

    try:
        return httpx.get(f"http://{host}:{port}/readyz", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False
