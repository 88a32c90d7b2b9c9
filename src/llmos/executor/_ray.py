"""The Ray executor: each worker of an attempt on the node the policy chose, through a placement
group (one bundle per worker, pinned to its node by Ray's `ray.io/node-id` label) and a detached,
named actor per worker that runs the same entrypoint as locally (`python -m llmos.run JOB.json`).

The torch.distributed environment is set per worker (RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE; rendezvous at rank 0's node address on a port free there), with the thread count
of its bundle and the GPU indices the policy chose. Run folders, checkpoints and logs are on the
shared storage. The handle names the placement group and the actors, so a restarted daemon adopts
what runs: actors and placement group are detached and outlive it.

Bringing an attempt up (Ray reserving the bundles, the actors starting, rank 0's address, the
programs) takes seconds; it runs on a thread of its own, so `launch` returns the handle at once and
the control loop keeps scheduling meanwhile. Until it is up, `poll` says "still running"; an
attempt that could not be brought up ends as a lost one (exit code None, retried) with the reason in
its log.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmos.errors import LlmosError
from llmos.executor._base import Exit, NotPlaced, attempt_dir, exit_record
from llmos.executor._kinds import kind_of

__all__ = ["RayExecutor", "connect", "namespace_for", "worker_environ"]

_RESERVE_TIMEOUT_S = 60.0  # Ray reserves what the policy chose; longer means the node is gone or busy elsewhere
_CALL_TIMEOUT_S = 10.0


def namespace_for(storage: Path) -> str:
    """One Ray namespace per control plane (its storage), so two daemons' actor names never collide."""
    return "llmos-" + hashlib.sha256(str(storage).encode()).hexdigest()[:10]


def connect(address: str, storage: Path) -> None:
    """Join the Ray cluster at HEAD:PORT as a driver, or fail with what to do."""
    try:
        import ray
    except ImportError:
        raise LlmosError("cluster mode needs Ray.", hint="pip install 'llmos[ray]'") from None
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, namespace=namespace_for(storage), log_to_driver=False, logging_level="WARNING",
                 configure_logging=False)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError: Ray's messages say which
        raise LlmosError(f"cannot join the Ray cluster at {address}: {exc}",
                         hint="Start it with `ray start --head --port 6379` on the head machine (docs/cluster.md), "
                              "and give llmos up --ray HEAD_ADDRESS:6379 from a machine of the cluster.") from None


class RayExecutor:
    backend = "ray"

    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ  # what every worker gets: storage, home, tracking URI
        self._actors: dict[str, Any] = {}  # actor name -> handle, for the actors this daemon has looked up
        self._stopping: set[str] = set()  # attempts (placement group names) this daemon has sent SIGTERM
        self._starting: dict[str, Future[None]] = {}  # attempts being brought up, by placement group name
        self._held_signal: dict[str, int] = {}  # a stop asked for while its attempt was coming up
        self._lock = threading.Lock()

    def attempt_dir(self, job_id: int, attempt: int) -> Path:
        return attempt_dir(job_id, attempt)

    # ---- start ---------------------------------------------------------------------------------
    def launch(self, job_id: int, attempt: int, job: BaseModel, placement: dict[str, Any]) -> str:
        from ray.util import placement_group

        folder = attempt_dir(job_id, attempt)
        folder.mkdir(parents=True, exist_ok=True)
        workers = placement["workers"]
        program = kind_of(job).program(job, len(workers[0]["cores"]), folder)
        name = f"llmos-{job_id}-{attempt}"
        handle = {"backend": "ray", "pg": name, "workers": [f"{name}-{r}" for r in range(len(workers))]}
        (folder / "pid.json").write_text(json.dumps(handle))  # before anything starts: a crash leaves it adoptable
        bundles = [_bundle(w) for w in workers]
        pg = placement_group(bundles, strategy="PACK", name=name, lifetime="detached",
                             bundle_label_selector=[{"ray.io/node-id": w["node"]} for w in workers])
        future: Future[None] = Future()
        self._starting[name] = future
        threading.Thread(target=self._bring_up, name=f"ray-launch-{name}", daemon=True,
                         args=(future, handle, pg, workers, bundles, program, job_id, folder)).start()
        return json.dumps(handle)

    def _bring_up(self, future: Future[None], handle: dict[str, Any], pg: Any, workers: list[dict[str, Any]],
                  bundles: list[dict[str, float]], program: Any, job_id: int, folder: Path) -> None:
        """Reserve the bundles and start every worker (on the launch thread); a stop asked for meanwhile
        is sent once they run. Failing, give back what the attempt held and say why in its log."""
        try:
            _reserve(pg, [w["node"] for w in workers], bundles)
            try:
                self._start_workers(handle, pg, workers, bundles, program, job_id, folder)
            except Exception as exc:  # an actor that died starting, a node lost meanwhile: give back, retry
                raise NotPlaced(f"the attempt's Ray workers did not start ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:200] if str(exc) else ''}).",
                                hint="It is retried on the nodes there are then.") from None
        except Exception as exc:
            self._ended(handle, Exit(None, None))
            message = (f"{exc.message} {exc.hint or ''}" if isinstance(exc, LlmosError)
                       else f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(OSError), (folder / "output.log").open("a") as log:
                log.write(f"llmos: {message.strip()}\n")
            with self._lock:
                self._held_signal.pop(handle["pg"], None)
                future.set_exception(exc)
            return
        with self._lock:
            held = self._held_signal.pop(handle["pg"], None)
            future.set_result(None)
        if held is not None:
            self._signal(json.dumps(handle), held)

    def _start_workers(self, handle: dict[str, Any], pg: Any, workers: list[dict[str, Any]],
                       bundles: list[dict[str, float]], program: Any, job_id: int, folder: Path) -> None:
        """One detached actor per worker in its bundle; rank 0's address first; then every program."""
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        from llmos.executor._ray_worker import make_worker

        actors = []
        for rank, bundle in enumerate(bundles):
            actors.append(make_worker(
                handle["workers"][rank], num_cpus=bundle["CPU"], num_gpus=bundle.get("GPU", 0),
                memory=bundle.get("memory"),
                scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=rank)))
            self._actors[handle["workers"][rank]] = actors[-1]
        master_addr, master_port = ray.get(actors[0].address.remote(), timeout=_RESERVE_TIMEOUT_S)
        local = _local_ranks(workers)
        starts = []
        for rank, worker in enumerate(workers):
            env = {**self.environ, **program.env, **_worker_env(job_id, worker, rank, len(workers), local[rank],
                                                                   master_addr, master_port, folder)}
            log = folder / ("output.log" if rank == 0 else f"output-{rank}.log")
            starts.append(actors[rank].start.remote(program.argv, env, str(program.cwd), str(log),
                                                    str(folder / f"exit-{rank}.json")))
        ray.get(starts, timeout=_RESERVE_TIMEOUT_S)

    # ---- watch ---------------------------------------------------------------------------------
    def poll(self, handle: str, folder: Path) -> Exit | None:
        info = json.loads(handle)
        starting = self._starting.get(info["pg"])
        if starting is not None:
            if not starting.done():
                return None
            del self._starting[info["pg"]]
            if starting.exception() is not None:  # not brought up; already given back (see _bring_up)
                return Exit(None, time.time())
        codes, ended = [], []
        for rank, name in enumerate(info["workers"]):
            record = exit_record(folder / f"exit-{rank}.json")
            if record is not None:
                codes.append(record[0])
                ended.append(record[1])
                continue
            state = self._state(name)
            if state == "running":
                # A worker that failed leaves the others waiting on it forever: stop them. A SIGTERM
                # death while the attempt is being stopped is not a failure: the others end by themselves.
                stopping = info["pg"] in self._stopping
                failed = [c for c in codes if c not in (0, 75) and not (stopping and c == -signal.SIGTERM)]
                if failed:
                    self.kill(handle)
                    return self._ended(info, Exit(failed[0], max(ended)))
                return None
            if state == "gone":  # its node was lost (or the actor killed) before the program ended
                self.kill(handle)
                if codes and _combined(codes) == 0:  # rank 0 finished the run before the node went
                    return self._ended(info, Exit(0, ended[0]))
                return self._ended(info, Exit(None, None))
            return None  # ended, its record is being written
        return self._ended(info, Exit(_combined(codes), max(ended) if ended else None))

    def alive(self, handle: str) -> bool:
        starting = self._starting.get(json.loads(handle)["pg"])
        if starting is not None and not starting.done():
            return True
        return any(self._state(name) == "running" for name in json.loads(handle)["workers"])

    # ---- stop ----------------------------------------------------------------------------------
    def terminate(self, handle: str) -> None:
        self._stopping.add(json.loads(handle)["pg"])
        self._signal(handle, signal.SIGTERM)

    def kill(self, handle: str) -> None:
        self._signal(handle, signal.SIGKILL)

    def _signal(self, handle: str, signum: int) -> None:
        import ray

        name = json.loads(handle)["pg"]
        with self._lock:
            starting = self._starting.get(name)
            if starting is not None and not starting.done():  # sent by the launch thread once they run
                self._held_signal[name] = max(signum, self._held_signal.get(name, 0))  # SIGKILL over SIGTERM
                return
        calls = []
        for name in json.loads(handle)["workers"]:
            actor = self._actor(name)
            if actor is not None:
                calls.append(actor.signal.remote(signum))
        with contextlib.suppress(Exception):  # an actor on a lost node cannot be signalled: it is gone
            ray.get(calls, timeout=_CALL_TIMEOUT_S)

    def _ended(self, info: dict[str, Any], result: Exit) -> Exit:
        """Give back what the attempt held in Ray: its actors and placement group."""
        import ray
        from ray.util import get_placement_group, remove_placement_group

        for name in info["workers"]:
            actor = self._actors.pop(name, None) or self._actor(name)
            if actor is not None:
                with contextlib.suppress(Exception):
                    ray.kill(actor)
            self._actors.pop(name, None)
        with contextlib.suppress(Exception):
            remove_placement_group(get_placement_group(info["pg"]))
        self._stopping.discard(info["pg"])
        return result

    def _actor(self, name: str) -> Any:
        import ray

        if name not in self._actors:
            try:
                self._actors[name] = ray.get_actor(name)
            except ValueError:  # no such (live) actor
                return None
        return self._actors[name]

    def _state(self, name: str) -> str:
        """'running', 'ended' (exit record on its way) or 'gone' (actor dead or unknown, or made by a
        launch that died before starting its program)."""
        import ray
        from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

        actor = self._actor(name)
        if actor is None:
            return "gone"
        try:
            started, code = ray.get(actor.state.remote(), timeout=_CALL_TIMEOUT_S)
        except (GetTimeoutError, ActorUnavailableError):
            return "running"  # slow or briefly unreachable is not lost: the node's death shows as an actor error
        except RayActorError:
            self._actors.pop(name, None)
            return "gone"
        if not started:
            # No program and nobody starting one: its attempt's launch died with an earlier daemon
            # (killed between making the actors and starting them). Gone: the attempt is retried.
            return "running" if self._launching(name) else "gone"
        return "running" if code is None else "ended"

    def _launching(self, worker: str) -> bool:
        """Whether this daemon's launch thread is still bringing up the attempt of that worker."""
        starting = self._starting.get(worker.rsplit("-", 1)[0])
        return starting is not None and not starting.done()


def _reserve(pg: Any, nodes: list[str], bundles: list[dict[str, float]]) -> None:
    """Wait until Ray has reserved every bundle on its node; give up at once if a chosen node dies
    (Ray would wait for it forever), or after `_RESERVE_TIMEOUT_S` (Ray's resources held by others)."""
    import ray
    from ray.util import remove_placement_group

    ready, deadline = pg.ready(), time.monotonic() + _RESERVE_TIMEOUT_S
    while not ray.wait([ready], timeout=1.0)[0]:
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        lost = sorted({n[:8] for n in nodes if n not in alive})
        if lost or time.monotonic() > deadline:
            remove_placement_group(pg)
            why = f"node(s) {', '.join(lost)} left the cluster" if lost else \
                f"Ray could not reserve {bundles} within {_RESERVE_TIMEOUT_S:g} s (held by other Ray work?)"
            raise NotPlaced(f"the attempt was not placed: {why}.", hint="It is retried on the nodes there are then.")


def _bundle(worker: dict[str, Any]) -> dict[str, float]:
    bundle: dict[str, float] = {"CPU": float(len(worker["cores"]))}
    if worker["gpus"]:
        bundle["GPU"] = float(len(worker["gpus"]))
    if worker.get("memory_gb"):
        bundle["memory"] = float(int(worker["memory_gb"] * 1e9))
    return bundle


def _local_ranks(workers: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(local rank, local world size) of each worker: its index among the workers on its node."""
    on_node: dict[str, list[int]] = {}
    for rank, w in enumerate(workers):
        on_node.setdefault(w["node"], []).append(rank)
    return [(on_node[w["node"]].index(rank), len(on_node[w["node"]])) for rank, w in enumerate(workers)]


def _worker_env(job_id: int, worker: dict[str, Any], rank: int, world: int, local: tuple[int, int],
                master_addr: str, master_port: int, folder: Path) -> dict[str, str]:
    threads = str(len(worker["cores"]))
    return {"PYTHONUNBUFFERED": "1", "LLMOS_JOB_ID": str(job_id), "LLMOS_WORKER_LOGS": str(folder),
            "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(local[0]),
            "LOCAL_WORLD_SIZE": str(local[1]), "MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port),
            # The policy's GPU indices, in nvidia-smi's order, as locally (Ray's own choice is overridden).
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ",".join(map(str, worker["gpus"])),
            "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def _combined(codes: list[int]) -> int:
    """One exit code for the attempt (`codes` by rank): 0 when rank 0 succeeded — it saves the final
    model and marks the run finished only after every rank's last step, so another rank that dies
    afterwards (a SIGTERM that lands while it shuts down) did not stop the run —, 75 when they
    stopped with a checkpoint, else the first failure's."""
    if codes[0] == 0:
        return 0
    failures = [c for c in codes if c not in (0, 75)]
    return failures[0] if failures else 75


def worker_environ(storage: Path, tracking: str) -> dict[str, str]:
    """What every worker on every node gets: the storage, its own llmos home there (model cache),
    and the tracking server (or the SQLite store on the storage)."""
    return {"LLMOS_STORAGE": str(storage), "LLMOS_HOME": str(storage / "home"), "LLMOS_TRACKING_URI": tracking}
