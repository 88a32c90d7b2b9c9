"""One worker of a Ray attempt: a detached, named actor on the node the policy chose, which starts
the worker's program there and records how it ended.

It outlives the daemon (detached): a restarted daemon finds it by name and adopts it. The program
runs in a session of its own, so a signal reaches it and everything it started; its exit is
written to the attempt folder on shared storage (`exit-RANK.json`), where the daemon reads it
even after the actor is gone.

A training worker or a replica (`python -m llmos.run` / `llmos.serve`) is forked warm from the
node's fork server where one listens, as on the daemon's own machine (`llmos._forkserver`): the
node's first such program starts that server and runs as a new process, the next ones skip their
~5-10 s of imports. The program then dies with the actor (it is the actor's attached program),
and signals go to its supervisor, which passes them on.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmos._forkserver import Attached

__all__ = ["Worker", "make_worker"]

# Ray starts its worker processes at nice 15 (so its own daemons stay responsive), and a program
# an actor starts inherits that: a training's workers then lose the core to every Ray process on
# the node, and a DDP step waits for its slowest rank. The actors that run llmos programs start at
# the normal priority, as Ray's own job drivers do; raising it later would need privileges.
_RUNTIME_ENV = {"env_vars": {"RAY_worker_niceness": "0"}}


class Worker:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | Attached | None = None

    def address(self) -> tuple[str, int]:
        """This node's address and a port free on it now, for the rank-0 rendezvous."""
        import ray

        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def start(self, argv: list[str], env: dict[str, str], cwd: str, log: str, exit_file: str) -> int:
        """Start the program; returns its pid."""
        Path(exit_file).unlink(missing_ok=True)
        full_env = {**os.environ, **env}
        with open(log, "ab") as out:
            self.proc = _warm(argv, full_env, cwd, out.fileno()) or subprocess.Popen(
                argv, env=full_env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        threading.Thread(target=self._record, args=(self.proc, exit_file), daemon=True).start()
        return self.proc.pid

    def state(self) -> tuple[bool, int | None]:
        """Whether the program was started, and its exit code (negative: killed by that signal) or
        None while it runs. Never started: the daemon that made this actor died before starting it."""
        if self.proc is None:
            return False, None
        # A warm program's status is read by `_record`'s wait alone (one reader of its connection).
        return True, self.proc.poll() if isinstance(self.proc, subprocess.Popen) else self.proc.returncode

    def signal(self, signum: int) -> None:
        proc = self.proc
        if proc is None or (proc.poll() if isinstance(proc, subprocess.Popen) else proc.returncode) is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if isinstance(proc, subprocess.Popen) or signum == signal.SIGKILL:
                os.killpg(proc.pid, signum)  # the program's session (a warm one's supervisor leads it)
            else:
                proc.send_signal(signum)  # to the supervisor, which passes it on once

    @staticmethod
    def _record(proc: subprocess.Popen | Attached, exit_file: str) -> None:
        code = proc.wait()
        tmp = f"{exit_file}.tmp"
        with open(tmp, "w") as f:
            json.dump({"exit_code": code, "ended_s": time.time()}, f)
        os.replace(tmp, exit_file)
        # Keep nothing of the program running after it (its own children, in its session).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _warm(argv: list[str], env: dict[str, str], cwd: str, log_fd: int) -> Attached | None:
    """The program forked from this node's fork server, writing to `log_fd`; None where it starts
    as a new process (not a preloaded program, warm starts off, or no server listens yet)."""
    from llmos import _forkserver

    with open(os.devnull, "rb") as null:
        return _forkserver.attach(argv, env, cwd=Path(cwd), stdio=(null.fileno(), log_fd, log_fd), start="first",
                                  detach=True)


def make_worker(name: str, **options: Any) -> Any:  # an actor handle
    """A detached, named `Worker` actor (never restarted by Ray: the daemon decides what a lost worker
    means); `options` are Ray's (resources, scheduling strategy)."""
    import ray

    return ray.remote(Worker).options(name=name, lifetime="detached", max_restarts=0, runtime_env=_RUNTIME_ENV,
                                      **options).remote()
