"""Replica processes: the default spawn, free ports, and one handle for children and adopted pids.

A replica started by an earlier daemon is no longer our child: it is watched through psutil, and
recognised by its pid *and* start time, so a recycled pid is never mistaken for it.

A spawn returns a `subprocess.Popen` (a process on this machine, listening on loopback at the port
the supervisor chose) or a `RemoteReplica` (a process elsewhere, e.g. on a Ray node, that says
where it listens and how to find it again); the supervisor watches either through `ReplicaProc`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import psutil

__all__ = ["ForkedReplica", "ProcHandle", "RemoteReplica", "ReplicaProc", "Spawn", "adopt", "default_spawn",
           "free_port", "signals_unblocked", "start_time"]

# psutil derives start times from boot time and clock ticks: equal for one process, up to rounding.
_SAME_START_S = 0.05



class ReplicaProc(Protocol):
    """What the supervisor needs of a replica's process, wherever it runs."""

    pid: int
    started_at: float | None

    def alive(self) -> bool: ...

    def exit_code(self) -> int | None: ...

    def signal(self, sig: int) -> None: ...

    def wait(self, timeout_s: float) -> bool: ...


@runtime_checkable
class RemoteReplica(ReplicaProc, Protocol):
    """A replica a spawn started elsewhere: where it listens and the name a new daemon adopts it by."""

    host: str
    port: int
    key: str


Spawn = Callable[[list[str], dict[str, str], Path], "subprocess.Popen | ProcHandle | RemoteReplica"]


def default_spawn(argv: list[str], env: dict[str, str], log_path: Path, *, cores: Sequence[int] | None = None,
                  warm: bool = True) -> subprocess.Popen | ForkedReplica:
    """Start a replica with stdout and stderr appended to `log_path`, kept to `cores` (None: this
    process's own).

    A new session, so that a Ctrl-C meant for the daemon's terminal does not reach the replicas:
    they stop only when the controller drains them, and outlive a daemon that crashes. `warm`: a
    replica (`python -m llmos.serve JOB.json`) is forked from a warm server where one runs
    (llmos._forkserver), as the control plane's are, whether a daemon or `python -m llmos.deploy`
    supervises it; it writes its exit status beside its log. Anything else, and the first replica
    for a new server, starts as a new process.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if warm:
        from llmos import _forkserver
        from llmos._threads import usable_cores

        exit_file = log_path.with_suffix(".exit.json")
        pid = _forkserver.launch(argv, env, cwd=Path.cwd(), log=log_path,
                                 cores=list(cores) if cores is not None else usable_cores(), exit_file=exit_file)
        if pid is not None:
            return ForkedReplica(pid, exit_file)
    with log_path.open("ab") as log, signals_unblocked():
        started = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    if cores is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(started.pid, set(cores))  # before the replica starts its thread pools
    return started


@contextlib.contextmanager
def signals_unblocked() -> Iterator[None]:
    """No signal blocked in this thread while a child is started: a child inherits the mask, and a
    thread that blocks SIGTERM (the control plane's API thread, where `llmos deploy` starts the
    front and the first replicas) would otherwise start children that SIGTERM cannot drain."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    blocked = signal.pthread_sigmask(signal.SIG_SETMASK, set())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_time(pid: int) -> float | None:
    """The process's start time as psutil reports it (None when there is no such process)."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


class ProcHandle:
    """A replica process, started here (a Popen) or adopted from a previous daemon (a pid)."""

    def __init__(self, pid: int, popen: subprocess.Popen | None = None, started_at: float | None = None) -> None:
        self.pid = pid
        self._popen = popen
        self.started_at = started_at if started_at is not None else start_time(pid)

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        try:
            proc = psutil.Process(self.pid)
            same = self.started_at is not None and abs(proc.create_time() - self.started_at) < _SAME_START_S
            return same and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def exit_code(self) -> int | None:
        """The exit status of a child that ended; None while it runs or for an adopted process."""
        return self._popen.poll() if self._popen is not None else None

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):  # it ended between the check and the kill
                os.kill(self.pid, sig)

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the process to end; True when it has."""
        try:
            if self._popen is not None:
                self._popen.wait(timeout=timeout_s)
            else:
                psutil.Process(self.pid).wait(timeout=timeout_s)
        except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
            return False
        except psutil.Error:
            pass
        return True


def adopt(pid: int, started_at: float) -> ProcHandle | None:
    """A handle on a live process with this pid and start time, else None."""
    handle = ProcHandle(pid, started_at=started_at)
    return handle if handle.alive() else None


class ForkedReplica(ProcHandle):
    """A replica forked from a warm server (llmos._forkserver). `pid` is its supervisor: it passes
    SIGTERM on to the program, the program dies with it, and it writes the exit status to `exit_file`."""

    def __init__(self, pid: int, exit_file: Path) -> None:
        super().__init__(pid)
        self.exit_file = exit_file

    def exit_code(self) -> int | None:
        if self.alive():
            return None
        from llmos.executor._base import exit_record

        recorded = exit_record(self.exit_file)
        return None if recorded is None else recorded.code

    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL and self.alive():  # the program too, not only its supervisor
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
            return
        super().signal(sig)
