"""Deployments on the control plane: one `llmos.deploy.DeploymentController` per `kind: serve` job.

The manager stores each deployment (so a restarted daemon brings it back and the controller
adopts the front router and the replicas that survived: they are processes of their own, which
keep the deployment's address answering while the daemon is down), ticks the controllers from
the scheduling loop, and supplies their `spawn`: each replica is pinned to cores (and GPUs,
memory) that no job and no other replica holds, and is shown to the scheduler as a
non-preemptible holder of them, so jobs never start there (the front router is not pinned: it
only forwards bytes). A replica that finds no such room is not started: the spawn raises
`NoCapacity` and records the demand, which the scheduler sees as a queued critical job
(`waiting`); its policy frees room by preempting lower classes, and the deployment's next tick
spawns the replica there.

In cluster mode (`hosts`: the Ray cluster's nodes now) a replica is placed on a node with room
(spread across nodes, `place_on_hosts`) and runs there as a placement group of one bundle and a
detached actor (`llmos.executor._ray_replica`), listening on the node's address; the front router
stays on the daemon's machine and routes to every node. The deployments' folders (replica job
files, logs) are then on the storage every node sees. A replica whose node is lost counts as exited:
the supervisor replaces it, on a node with room.

A canary (a roll to a spec with a `canary:` section) is run by the controller; each change it
makes on its own (next step, promotion, rollback) is written to the audit log by the loop, as the
control plane's; `promote` and `rollback` do it by hand, as the caller.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import insert, select, update

from llmos.control import _auth as auth
from llmos.control._capacity import Need, demand_jobs, held_by, place_replica, too_big
from llmos.control._db import read, write
from llmos.control._errors import Conflict, NotFound
from llmos.control._inventory import NODE, Inventory
from llmos.control._logfiles import list_logs, read_chunk
from llmos.control._paths import control_dir
from llmos.control._replica_nodes import NodeReplicas
from llmos.control._schema import deployments, jobs
from llmos.control._submit import check_fits, request_of

if TYPE_CHECKING:
    import subprocess

    from sqlalchemy import Engine

    from llmos.deploy._process import ProcHandle
    from llmos.executor import Cluster

__all__ = ["DeploymentManager"]

PREFIX = "deploy:"
_CRITICAL = 3  # PRIORITY_CLASSES["critical"]: the class of replicas deployed before projects
# Who the audit log names for what a controller decides on its own (a canary's steps).
_CONTROL_PLANE = auth.Caller("control-plane", "system", "canary")


class DeploymentManager:
    def __init__(self, engine: Engine, inventory: Inventory, log: Any = print,
                 hosts: Callable[[], Cluster] | None = None, environ: dict[str, str] | None = None) -> None:
        """`hosts`: the Ray cluster's hosts now (cluster mode), None on one machine; `environ`: what
        every replica on a node gets (storage, llmos home, tracking URI), with LLMOS_STORAGE."""
        self.engine = engine
        self.inventory = inventory
        self.log = log
        self.hosts = hosts
        # Cluster mode: replicas on the nodes, their folders on the storage every node sees.
        self._nodes = NodeReplicas(hosts, environ or {}) if hosts is not None else None
        self._root = (Path((environ or {})["LLMOS_STORAGE"]) / "deployments" if hosts is not None
                      else control_dir() / "deployments")
        # Held while placing (a replica and a job never get one core) and while reading or changing
        # which deployments exist. Lock order: a controller's own lock, then this one (a controller's
        # tick places its replicas through _spawn). So nothing calls into a running controller while
        # holding this lock: an API call that did (`deploy show` during a tick that starts a replica)
        # waited for the controller while the tick waited for this lock, and the daemon hung.
        self.lock = threading.RLock()
        self.controllers: dict[str, Any] = {}
        self.stopping: dict[str, threading.Thread] = {}  # undeployed, replicas still draining
        self.owners: dict[str, str] = {}
        self.projects: dict[str, str] = {}  # deployment -> project (whose quota its replicas count against)
        self.isolation = "trusted"  # set by the daemon: replicas run isolated like their project's jobs
        self.classes: dict[str, int] = {}  # deployment -> the class its replicas wait for room at
        # Replicas the controllers asked for since their last tick and found no room for (deployment
        # -> need, count), and since when each deployment waits (its place in the scheduler's queue).
        self._demand: dict[str, tuple[Need, int]] = {}
        self._waiting_since: dict[str, float] = {}
        self._pins_file = control_dir() / "deployments" / "pins.json"
        # pid (actor name on Ray) -> cores, gpus, memory, deployment, started (and node, replica, where on Ray)
        self._pins: dict[str, dict[str, Any]] = self._load_pins()

    @staticmethod
    def create(engine: Engine, inventory: Inventory, log: Any = print, hosts: Callable[[], Cluster] | None = None,
               environ: dict[str, str] | None = None) -> DeploymentManager | None:
        try:
            import llmos.deploy  # noqa: F401
        except ImportError:
            return None
        manager = DeploymentManager(engine, inventory, log, hosts, environ)
        manager.restore()
        return manager

    # ---- operations (API thread) ---------------------------------------------------------------
    def deploy(self, caller: auth.Caller, job: Any, project: str | None = None) -> dict:
        """Create a deployment in `project` (default: its owner's), or roll an existing one of that name to `job`."""
        check_fits(request_of(job), self.hosts() if self.hosts is not None else self.inventory)
        now = time.time()
        with self.lock:
            if job.name in self.stopping and self.stopping[job.name].is_alive():
                raise Conflict(f"deployment {job.name} is stopping: its replicas are draining.",
                               hint="Deploy it again when they have exited (at most its server.drain_timeout_s).")
            existing = self.controllers.get(job.name)
            if existing is None:
                controller = self._create(caller, job, project, now)
        if existing is None:
            self.log(f"deployment {job.name}: {job.model} at port {controller.front_port}")
            return {**self._view(job.name, controller), "rolled": False}
        # A running controller is called outside this manager's lock (see the note on self.lock).
        self._authorize(caller, job.name, "roll")
        existing.roll(job)
        taken = existing.take_audit()  # a canary began: said as the caller's
        with write(self.engine) as conn:
            # A canary's job is stored once promoted: a daemon restarted meanwhile serves the
            # current version (the canary's replicas drain), never an unjudged new one.
            if not any(action == "deploy.canary" for action, _ in taken):
                conn.execute(update(deployments).where(deployments.c.name == job.name).values(
                    spec=job.model_dump_json(), model_ref=job.model, updated_s=now))
            auth.record(conn, caller, "deploy.roll", f"deployment {job.name}", detail=job.model)
            self._record_canary(conn, caller, job.name, existing, taken)
        return {**self._view(job.name, existing), "rolled": True}

    def _create(self, caller: auth.Caller, job: Any, project: str | None, now: float) -> Any:
        """Start and record a new deployment's controller. Called under this manager's lock: no
        other thread has the new controller yet, so starting it here cannot wait on a tick."""
        project = project or caller.owner
        rank = self._class_for(caller, project)
        controller = self._controller(job.name, job, job.server.port)
        controller.start()
        with write(self.engine) as conn:
            row = conn.execute(select(deployments.c.name).where(deployments.c.name == job.name)).first()
            values = {"owner": caller.owner, "project": project, "priority": rank,
                      "model_ref": job.model, "spec": job.model_dump_json(),
                      "front_port": controller.front_port, "state": "ACTIVE", "updated_s": now}
            if row is None:
                conn.execute(insert(deployments).values(name=job.name, created_s=now, **values))
            else:
                conn.execute(update(deployments).where(deployments.c.name == job.name).values(**values))
            auth.record(conn, caller, "deploy", f"deployment {job.name}", detail=job.model)
        self.controllers[job.name] = controller
        self.owners[job.name] = caller.owner
        self.projects[job.name] = project
        self.classes[job.name] = rank
        return controller

    def _project(self, name: str) -> str:
        return self.projects.get(name) or self.owners.get(name, "deployments")

    def _class_for(self, caller: auth.Caller, project: str) -> int:
        from llmos.control._projects import granted_rank, replica_class

        with read(self.engine) as conn:
            return replica_class(caller.is_admin, granted_rank(conn, project))

    def _authorize(self, caller: auth.Caller, name: str, action: str) -> None:
        """Its owner, while a developer of its project, or an admin of that project may change it."""
        from llmos.control._projects import authorize

        owner = self.owners.get(name)
        mine = owner == caller.owner
        with read(self.engine) as conn:
            authorize(conn, caller, self._project(name), "developer" if mine else "admin",
                      f"{action} deployment {name}" if mine else f"{action} {owner}'s deployment {name}")

    def undeploy(self, caller: auth.Caller, name: str) -> dict:
        with self.lock:
            controller = self.controllers.get(name)
            if controller is None:
                raise NotFound(f"no deployment {name}.", hint="List them with: llmos status")
            self._authorize(caller, name, "stop")
            del self.controllers[name]
            self._demand.pop(name, None)
            self._waiting_since.pop(name, None)
            with write(self.engine) as conn:
                conn.execute(update(deployments).where(deployments.c.name == name).values(
                    state="STOPPING", updated_s=time.time()))
                auth.record(conn, caller, "undeploy", f"deployment {name}")
            # Draining takes up to the replicas' drain timeout: not inside a request, nor under the
            # lock the scheduling loop needs. The replicas keep their cores (pins) until they exit.
            self.stopping[name] = threading.Thread(target=self._drain, args=(name, controller),
                                                   name=f"undeploy-{name}", daemon=True)
            self.stopping[name].start()
        return {"name": name, "state": "STOPPING"}

    def canary(self, caller: auth.Caller, name: str, action: str) -> dict:
        """`promote` or `rollback` the deployment's running canary now."""
        auth.require(caller, "developer", f"{action} deployments")
        with self.lock:
            controller = self.controllers.get(name)
        if controller is None:
            raise NotFound(f"no deployment {name}.", hint="List them with: llmos deploy ls")
        self._authorize(caller, name, action)
        if action == "promote":
            controller.promote()
        else:
            controller.rollback()
        with write(self.engine) as conn:
            self._record_canary(conn, caller, name, controller, controller.take_audit())
        return self._view(name, controller)

    def _record_canary(self, conn: Any, caller: auth.Caller, name: str, controller: Any,
                       taken: list[tuple[str, str]]) -> None:
        """Audit a canary's changes; a promotion also stores the promoted job as the deployment's."""
        for action, detail in taken:
            auth.record(conn, caller, action, f"deployment {name}", detail=detail)
            if action == "deploy.promote":
                conn.execute(update(deployments).where(deployments.c.name == name).values(
                    spec=controller.job.model_dump_json(), model_ref=controller.job.model, updated_s=time.time()))

    def _drain(self, name: str, controller: Any) -> None:
        try:
            controller.stop(drain_timeout_s=controller.job.server.drain_timeout_s)
        finally:
            with write(self.engine) as conn:
                conn.execute(update(deployments).where(deployments.c.name == name,
                                                       deployments.c.state == "STOPPING").values(
                    state="STOPPED", updated_s=time.time()))

    def list(self) -> list[dict]:
        with self.lock:
            controllers = sorted(self.controllers.items())
        return [self._view(name, controller) for name, controller in controllers]

    def show(self, name: str) -> dict:
        with self.lock:
            controller = self.controllers.get(name)
        if controller is None:
            raise NotFound(f"no deployment {name}.", hint="List them with: llmos deploy ls")
        return self._view(name, controller)

    def log_files(self, name: str) -> list[dict]:
        """The front router's and every replica's log (the latest replicas'), of a deployment that
        runs or ran."""
        folder = self._root / name / "logs"
        if name not in self.controllers and not folder.is_dir():
            raise NotFound(f"no deployment {name}.", hint="List them with: llmos deploy ls")
        return list_logs(sorted(folder.glob("*.log")), folder) if folder.is_dir() else []

    def read_log(self, name: str, file: str, offset: int = 0) -> dict:
        return read_chunk(self._root / name / "logs", file, offset, f"deployment {name}",
                          f"llmos deploy logs {name}")

    # ---- the loop's side -----------------------------------------------------------------------
    def restore(self) -> None:
        """Bring back the deployments that were active (their live replicas are adopted), and finish
        stopping those an earlier daemon was draining when it went down."""
        from llmos.spec import ServeJob

        with read(self.engine) as conn:
            rows = conn.execute(select(deployments).where(deployments.c.state.in_(["ACTIVE", "STOPPING"]))).all()
        for row in rows:
            try:
                controller = self._controller(row.name, ServeJob.model_validate_json(row.spec), row.front_port)
                if row.state == "STOPPING":  # stop() adopts what the earlier controller left running
                    self.stopping[row.name] = threading.Thread(target=self._drain, args=(row.name, controller),
                                                               name=f"undeploy-{row.name}", daemon=True)
                    self.stopping[row.name].start()
                    continue
                controller.start()
            except Exception as exc:  # one broken deployment must not keep the daemon down
                self.log(f"deployment {row.name} could not be restored: {exc}")
                continue
            for event in controller.status().events:  # what was kept (front, replicas) and what restarted
                self.log(f"deployment {row.name}: {event.split(' ', 1)[-1]}")
            self.controllers[row.name] = controller
            self.owners[row.name] = row.owner
            self.projects[row.name] = row.project or row.owner
            if row.priority is not None:
                self.classes[row.name] = row.priority

    def tick(self, now: float) -> None:
        for name, controller in list(self.controllers.items()):
            with self.lock:  # a demand lasts one tick: the controller asks again while it still wants it
                self._demand.pop(name, None)
            try:
                controller.tick(time.monotonic())
                self._audit_canary(name, controller)
            except Exception as exc:
                self.log(f"deployment {name}: tick failed: {exc}")
            with self.lock:
                if name not in self._demand:
                    self._waiting_since.pop(name, None)

    def _audit_canary(self, name: str, controller: Any) -> None:
        taken = controller.take_audit()
        if not taken:
            return
        with write(self.engine) as conn:
            self._record_canary(conn, _CONTROL_PLANE, name, controller, taken)
        for action, detail in taken:
            self.log(f"deployment {name}: {action}: {detail}")

    def stop_all(self) -> None:
        """Daemon shutdown (`llmos down`): replicas drain and stop, then the front routers; the
        deployments come back at the next `llmos up`. A daemon that is killed instead stops nothing:
        fronts and replicas keep serving, and the next daemon adopts them."""
        with self.lock:
            controllers = list(self.controllers.values())
            self.controllers.clear()
        for controller in controllers:
            controller.stop(drain_timeout_s=controller.job.server.drain_timeout_s)
        with self.lock:
            self._demand.clear()
            self._waiting_since.clear()
            undeploying = list(self.stopping.values())
        # Undeploys still draining finish too: the process exits next, and would leave their front
        # and replicas running until the next `llmos up` stopped them.
        for thread in undeploying:
            thread.join()

    def running(self, now: float) -> list:
        """Replicas as non-preemptible holders in the scheduler's snapshot."""
        from llmos.scheduler import PRIORITY_CLASSES, Job, Resources, RunningJob, Slot

        held = []
        for pid, pin in self._live_pins().items():
            cpus = float(len(pin["cores"]))
            host = self._host(pin.get("node", NODE))
            gpu_slots = tuple(i for i, g in enumerate(host.gpus if host else ()) if g.index in pin["gpus"])
            job = Job(f"{PREFIX}{pin['deployment']}:{pid}", self._project(pin["deployment"]), 0.0,
                      Resources(cpus, pin["memory_gb"], float(len(gpu_slots))),
                      priority=PRIORITY_CLASSES["critical"], preemptible=False)
            held.append(RunningJob(job, (Slot(pin.get("node", NODE), cpus, pin["memory_gb"], gpu_slots),),
                                   pin["started"]))
        return held

    def waiting(self, now: float) -> list:
        """Replicas waiting for room, as queued jobs of their deployment's class (critical unless
        its project was granted less) in the scheduler's snapshot."""
        return [job for name, (need, count) in sorted(self._demand.items())
                for job in demand_jobs(f"{PREFIX}{name}:", self._project(name), need, count,
                                       self._waiting_since.get(name, now), self.classes.get(name, _CRITICAL))]

    def used_cores(self) -> set[int]:
        """The local host's cores that replicas hold."""
        return self.used_by_node().get(NODE, set())

    def used_by_node(self) -> dict[str, set[int]]:
        """The core ids replicas hold on each host (host name -> ids)."""
        used: dict[str, set[int]] = {}
        for pin in self._live_pins().values():
            used.setdefault(pin.get("node", NODE), set()).update(pin["cores"])
        return used

    def owns(self, job_id: str) -> bool:
        return job_id.startswith(PREFIX)

    def holders(self) -> list[dict]:
        return [{"id": f"{pin['deployment']}/{pin.get('replica', pid)}", "name": pin["deployment"], "owner":
                 self.owners.get(pin["deployment"], ""), "state": "SERVING", "cores": pin["cores"],
                 "gpus": pin["gpus"], "memory_gb": pin["memory_gb"], "node": pin.get("node", NODE)}
                for pid, pin in self._live_pins().items()]

    # ---- placement of replicas -----------------------------------------------------------------
    def _controller(self, name: str, job: Any, front_port: int) -> Any:
        from llmos.deploy import DeploymentController

        holder: dict[str, Any] = {}
        spawn = self._spawn if self._nodes is None else self._spawn_on_node
        controller = DeploymentController(name, job, state_dir=self._root / name, front_port=front_port,
                                          spawn=lambda argv, env, log: spawn(holder["c"], argv, env, log),
                                          adopt_remote=None if self._nodes is None else self._adopt_remote)
        holder["c"] = controller
        return controller

    def _spawn(self, controller: Any, argv: list[str], env: dict[str, str],
               log_path: Path) -> subprocess.Popen | ProcHandle:
        from llmos.deploy import DeployError
        from llmos.deploy._process import default_spawn
        from llmos.executor import isolated

        res = controller.job.resources
        need = Need(res.cpus, res.memory_gb or 0.0, res.gpus)
        with self.lock:
            if (why := too_big(self.inventory, need)) is not None:
                raise DeployError(f"deployment {controller.name}: a replica asks for {why}.",
                                  hint="Lower the deployment's resources, or give the control plane more.")
            room = place_replica(self.inventory, held_by(self._holding_placements(), self._live_pins().values()),
                                 need)
            if isinstance(room, str):  # never oversubscribe: wait for the scheduler to free room
                self._wait_for_room(controller.name, need, room)
            cores, gpus = room
            # nvidia-smi's numbering (the inventory's), not CUDA's default fastest-first one.
            env = {**env, "OMP_NUM_THREADS": str(len(cores)), "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
                   "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))}
            # As a job of its project (llmos.executor.isolated): its own user, the control folder hidden.
            argv, env = isolated(argv, env, self.isolation, self._project(controller.name),
                                 self._root / controller.name / "replicas", cores)
            # As the daemon's user, forked warm where it can; an isolated one as a new process.
            started = default_spawn(argv, env, log_path, cores=cores, warm=self.isolation not in ("users", "sandbox"))
            import psutil

            self._pins[str(started.pid)] = {"deployment": controller.name, "cores": cores, "gpus": gpus,
                                            "memory_gb": need.memory_gb,
                                            "started": psutil.Process(started.pid).create_time()}
            self._save_pins()
        return started

    def _wait_for_room(self, name: str, need: Need, room: str) -> NoReturn:
        """Record that a replica of `name` waits for `room` (the scheduler sees it queued) and say so."""
        from llmos.deploy import NoCapacity

        _, count = self._demand.get(name, (need, 0))
        self._demand[name] = (need, count + 1)
        self._waiting_since.setdefault(name, time.time())
        raise NoCapacity(f"deployment {name}: no room for a replica; it waits for {room}.",
                         wanting=room, hint="The scheduler preempts lower-priority jobs to make room.")

    # ---- replicas on the nodes of a Ray cluster ------------------------------------------------
    def _spawn_on_node(self, controller: Any, argv: list[str], env: dict[str, str], log_path: Path) -> Any:
        """Place a replica on a node with room and start it there (`NodeReplicas`)."""
        assert self._nodes is not None
        res = controller.job.resources
        need = Need(res.cpus, res.memory_gb or 0.0, res.gpus)
        with self.lock:
            room = self._nodes.place(controller.name, need, self._holding_placements(), self._live_pins())
            if isinstance(room, str):
                self._wait_for_room(controller.name, need, room)
            replica, pin = self._nodes.start(controller.name, room, need, argv, env, log_path)
            self._pins[replica.key] = pin
            self._save_pins()
        return replica

    def _adopt_remote(self, saved: Any, log: Path) -> Any:
        assert self._nodes is not None
        with self.lock:
            return self._nodes.adopt(saved, log)

    def _host(self, node: str) -> Inventory | None:
        return self.inventory if self.hosts is None else self.hosts().host(node)

    def _holding_placements(self) -> list[str | None]:
        with read(self.engine) as conn:
            return [r.placement for r in conn.execute(select(jobs.c.placement).where(jobs.c.holds.is_(True))).all()]

    def _live_pins(self) -> dict[str, dict[str, Any]]:
        from llmos.executor import Proc, alive

        with self.lock:  # it rewrites the pins: never beside a _spawn adding one (the metrics read it too)
            live = {pid: pin for pid, pin in list(self._pins.items())
                    if (self._nodes.alive(pid, pin) if self._nodes is not None and "node" in pin
                        else alive(Proc(int(pid), pin["started"])))}
            if len(live) != len(self._pins):
                self._pins = live
                self._save_pins()
            return live

    def _load_pins(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(self._pins_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save_pins(self) -> None:
        self._pins_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._pins_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._pins))
        os.replace(tmp, self._pins_file)

    def _view(self, name: str, controller: Any) -> dict:
        s = controller.status()
        return {"name": s.name, "model": s.model, "model_version": s.model_version, "url": s.front_url,
                "front_pid": s.front_pid,
                "desired": s.desired, "ready": s.ready, "min": s.min_replicas, "max": s.max_replicas,
                "owner": self.owners.get(name, ""), "project": self._project(name), "scaling": s.scaling_reason,
                "waiting": self._demand.get(name, (None, 0))[1],
                "rollout": None if s.rollout is None else s.rollout.state, "events": s.events[-5:],
                "start_failures": s.start_failures,
                "canary": None if s.canary is None else asdict(s.canary),
                "replicas": [{"id": r.replica_id, "pid": r.pid, "port": r.port, "url": f"http://{r.host}:{r.port}",
                              "version": r.model_version, "state": r.state, "served": r.served,
                              **self._where(name, r)}
                             for r in s.replicas]}

    def _where(self, name: str, replica: Any) -> dict[str, Any]:
        """The cores a replica holds and, on a cluster, its node."""
        if self.hosts is None:
            return {"cores": self._pins.get(str(replica.pid), {}).get("cores", [])}
        pin = next((p for p in list(self._pins.values()) if p.get("deployment") == name
                    and p.get("replica") == replica.replica_id), {})
        return {"cores": pin.get("cores", []), "node": pin.get("node", "")}
