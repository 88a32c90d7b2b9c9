"""A deployment replica on a Ray node: a placement group of one bundle pinned to the node the control
plane chose, and a detached, named actor (the same `Worker` as a job's) that runs the replica's
`python -m llmos.serve JOB.json` there, listening on the node's address at a port free on it.

`RayReplica` is what the deployment supervisor watches (`llmos.deploy._process.RemoteReplica`):
alive / exit code / signal / wait, plus where it listens and its name. The actor and its placement
group outlive the daemon (detached): a restarted daemon finds the replica again by name
(`adopt_replica`). An actor that Ray reports dead (its node was lost) is a replica that exited: the
supervisor replaces it, and the control plane places the new one where there is room. Whatever ends,
the actor and the placement group are given back to Ray.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmos.executor._base import exit_record

__all__ = ["RayReplica", "adopt_replica", "start_replica"]

_CALL_TIMEOUT_S = 2.0  # a state call slower than this is not an answer yet (the node may be going)
_FRESH_S = 0.5  # how long one look at the actor stands: the supervisor and the scheduler both ask


class RayReplica:
    """One replica's program on a Ray node, through its actor."""

    def __init__(self, key: str, actor: Any, pid: int, host: str, port: int, started_at: float,
                 exit_file: Path | None = None) -> None:
        self.key, self.pid, self.host, self.port, self.started_at = key, pid, host, port, started_at
        self._actor = actor
        self._exit_file = exit_file
        self._code: int | None = None
        self._ended = False
        self._seen_s = -float("inf")

    def alive(self) -> bool:
        return not self._look(_FRESH_S)

    def exit_code(self) -> int | None:
        """The program's exit status once it ended (None: unknown, e.g. its node was lost)."""
        return self._code

    def signal(self, sig: int) -> None:
        import ray

        if self._ended:
            return
        with contextlib.suppress(Exception):  # an actor on a lost node cannot be signalled: it is gone
            ray.get(self._actor.signal.remote(int(sig)), timeout=_CALL_TIMEOUT_S)

    def wait(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self._look(0.0):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def release(self) -> None:
        """Stop the program (if it runs) and give the actor and the placement group back to Ray."""
        import ray
        from ray.util import get_placement_group, remove_placement_group

        self._ended = True
        with contextlib.suppress(Exception):
            ray.kill(self._actor)
        with contextlib.suppress(Exception):
            remove_placement_group(get_placement_group(self.key))

    def _look(self, max_age_s: float) -> bool:
        """Whether the program has ended (asking the actor at most every `max_age_s`)."""
        import ray
        from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

        if self._ended or time.monotonic() - self._seen_s < max_age_s:
            return self._ended
        try:
            _started, code = ray.get(self._actor.state.remote(), timeout=_CALL_TIMEOUT_S)  # started before this object
        except (GetTimeoutError, ActorUnavailableError):
            # Slow or unreachable for now is not lost: Ray reports the actor dead once its node is declared
            # dead. (Meanwhile the front stops routing to a replica that fails its probes.)
            code, gone = None, False
        except RayActorError:
            record = exit_record(self._exit_file) if self._exit_file is not None else None
            code, gone = (None if record is None else record.code), True
        else:
            gone = code is not None
        self._seen_s = time.monotonic()
        if gone:
            self._code = code
            self.release()
        return self._ended


def start_replica(key: str, node: str, bundle: dict[str, float], argv: list[str], env: dict[str, str], cwd: Path,
                  log: Path, bind: Callable[[str, int], None]) -> RayReplica:
    """Reserve `bundle` on `node`, start the actor there, ask it for the node's address and a free
    port, `bind` the replica's job file to them, and start the program. `NotPlaced` when the node
    left (or Ray cannot reserve the bundle): nothing is left behind in Ray."""
    import ray
    from ray.util import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from llmos.executor._ray import _reserve
    from llmos.executor._ray_worker import make_worker

    pg = placement_group([bundle], strategy="STRICT_PACK", name=key, lifetime="detached",
                         bundle_label_selector=[{"ray.io/node-id": node}])
    _reserve(pg, [node], [bundle])
    actor = make_worker(key, num_cpus=bundle["CPU"], num_gpus=bundle.get("GPU", 0), memory=bundle.get("memory"),
                        scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0))
    exit_file = log.with_suffix(".exit.json")
    try:
        host, port = ray.get(actor.address.remote(), timeout=60.0)
        bind(host, port)
        pid = ray.get(actor.start.remote(argv, env, str(cwd), str(log), str(exit_file)), timeout=60.0)
    except BaseException:
        with contextlib.suppress(Exception):
            ray.kill(actor)
        with contextlib.suppress(Exception):
            remove_placement_group(pg)
        raise
    return RayReplica(key, actor, int(pid), host, int(port), time.time(), exit_file)


def adopt_replica(key: str, pid: int, host: str, port: int, started_at: float, log: Path) -> RayReplica | None:
    """The replica an earlier daemon started under this name, if its program still runs."""
    import ray

    try:
        actor = ray.get_actor(key)
    except ValueError:  # no such live actor: its node was lost, or it was stopped
        return None
    replica = RayReplica(key, actor, pid, host, port, started_at, log.with_suffix(".exit.json"))
    return replica if replica.alive() else None
