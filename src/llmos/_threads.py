"""How an llmos process that runs torch uses the CPU: how many threads, on which cores, and how
its OpenMP threads wait once a parallel region ends. The one home of that rule: training workers,
compression and its measuring processes, serving and evaluation all take it from here, and the
user's explicit settings (`OMP_NUM_THREADS`, `OMP_WAIT_POLICY`, `GOMP_SPINCOUNT`, a spec's
`num_threads`) always win.

Why the spin count: torch's CPU kernels run on libgomp, whose threads spin ~300,000 times at the
end of every parallel region before they sleep. Alone on its cores that saves a wake-up per op;
beside another busy process it is a collapse: a thread spins at a barrier while the partner it
waits for is descheduled, burning the core that partner needs. Two quickstart trainings on 2
cores each ran 11.6x slower than alone (sharing fairly costs 2x). A spin count of SPIN_COUNT keeps
a thread awake long enough for the next op of a busy step and lets it sleep before it steals a
time slice (benchmarks/contention.py measures both sides; BENCHMARKS.md has the figures).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["SERVER_SPIN_COUNT", "SPIN_COUNT", "CoreWatch", "Role", "ThreadPlan", "apply_plan", "decide_threads",
           "held_by_daemon", "keep_to_cores", "openmp_env", "plan_threads", "prepare_process", "threads_beside",
           "usable_cores"]

Role = Literal["batch", "server"]  # training, compression, evaluation | a server between requests
SPIN_COUNT = "1000"  # libgomp's own value for oversubscribed processes; see the module docstring
# A server spins a little longer: its threads wait between passes on the cores the event loop needs
# to send the answers, and a pass's answer reached the client 0.84-1.06 ms after the pass instead of
# 1.3-1.9 ms with libgomp's default (2-core host, same throughput; 0 spins made every pass slower).
SERVER_SPIN_COUNT = "10000"


def usable_cores() -> list[int]:
    """The cores this process may run on (its affinity mask; every core where there is none)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


# Set beside the variables llmos chose (and inherited with them), so that a process of another
# role may choose again: `llmos up` (batch) starts the daemon that starts servers.
_CHOSEN = "LLMOS_OPENMP_ROLE"


def openmp_env(environ: Mapping[str, str] | None = None, *, role: Role = "batch") -> dict[str, str]:
    """The OpenMP variables to add to a torch process's environment; none where the user chose."""
    env = os.environ if environ is None else environ
    if _CHOSEN not in env and ("OMP_WAIT_POLICY" in env or "GOMP_SPINCOUNT" in env):
        return {}
    return {"GOMP_SPINCOUNT": SERVER_SPIN_COUNT if role == "server" else SPIN_COUNT, _CHOSEN: role}


def prepare_process(role: Role = "batch") -> None:
    """Give this process the OpenMP defaults. libgomp reads them once, when torch loads it, so
    entrypoints call this before importing torch; later it only reaches child processes."""
    os.environ.update(openmp_env(role=role))


@dataclass(frozen=True)
class ThreadPlan:
    threads: int  # intra-op threads per worker
    cores: tuple[int, ...] | None  # keep the process to these cores (None: leave its affinity)
    why: str  # one line a person reads: where the number came from
    beside_daemon: bool = False  # a daemon in this LLMOS_HOME holds some of the cores for its work
    adaptive: bool = True  # llmos chose the count, so it may shrink it while cores are busy (CoreWatch)


def decide_threads(requested: int | None, env_threads: str | None, cores: Iterable[int], *, workers: int = 1,
                   held: Iterable[int] = (), field: str = "num_threads", placed: bool = False) -> ThreadPlan:
    """Threads per worker for `workers` processes on `cores`, of which a running daemon holds
    `held` for its jobs and replicas. `placed`: llmos itself (the daemon, the launcher) set
    OMP_NUM_THREADS, so it is not the user's. Pure: every input is an argument."""
    cores, workers = sorted(set(cores)), max(1, workers)
    if requested:
        return ThreadPlan(requested, None, f"{field}: {requested}", adaptive=False)
    if env_threads and env_threads.strip().isdigit() and int(env_threads) > 0:
        source = "placed by llmos" if placed else "the user's"
        return ThreadPlan(int(env_threads), None, f"OMP_NUM_THREADS={int(env_threads)} ({source})", adaptive=placed)
    taken = set(held) & set(cores)
    if not taken:
        return ThreadPlan(max(1, len(cores) // workers), None, f"{len(cores)} usable core(s)")
    free = tuple(c for c in cores if c not in taken)
    if free:
        return ThreadPlan(max(1, len(free) // workers), free,
                          f"the llmos daemon holds core(s) {_span(taken)} for its jobs; keeping to "
                          f"core(s) {_span(free)}, which it has not handed out", beside_daemon=True)
    # Every core is busy with the daemon's work: one thread per worker takes a fair time slice
    # without making the daemon's jobs wait for a descheduled partner at each barrier.
    return ThreadPlan(1, None, f"the llmos daemon holds every core ({_span(taken)}) for its jobs; "
                               "one thread beside them (`llmos submit` queues the job there instead)",
                      beside_daemon=True)


def plan_threads(requested: int | None = None, *, workers: int = 1, field: str = "num_threads",
                 environ: Mapping[str, str] | None = None) -> ThreadPlan:
    """decide_threads for this process (or a child with `environ`): its affinity, environment and,
    unless the control plane itself placed it, the cores a daemon in this LLMOS_HOME handed out."""
    env = os.environ if environ is None else environ
    placed = "LLMOS_JOB_ID" in env or "LLMOS_WORKER_CORES" in env
    return decide_threads(requested, env.get("OMP_NUM_THREADS"), usable_cores(), workers=workers,
                          held=() if placed else held_by_daemon(), field=field, placed=placed)


def keep_to_cores(plan: ThreadPlan) -> None:
    """Keep this process (and the threads it starts from now on) to the plan's cores, if it names any."""
    if plan.cores is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, plan.cores)


def apply_plan(plan: ThreadPlan) -> None:
    """keep_to_cores, then size torch's intra-op pool (torch is imported here)."""
    keep_to_cores(plan)
    import torch

    torch.set_num_threads(plan.threads)


def held_by_daemon() -> set[int]:
    """Cores a live daemon in this LLMOS_HOME holds for jobs and replicas (empty when none runs)."""
    from llmos.paths import held_cores_file

    path = held_cores_file(create=False)
    try:
        record = json.loads(path.read_text())
        pid, started_s, held = int(record["pid"]), float(record["started_s"]), record["held"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    if not _alive(pid, started_s):
        return set()
    return {int(c) for c in held}


def _alive(pid: int, started_s: float) -> bool:
    import psutil

    try:
        return abs(psutil.Process(pid).create_time() - started_s) < 1.0
    except (psutil.Error, OSError):
        return False


def _span(cores: Iterable[int]) -> str:
    return ",".join(map(str, sorted(cores)))


def threads_beside(base: int, cores: int, others_busy: float) -> int:
    """Threads for a process planned at `base` threads on `cores` cores while other processes keep
    `others_busy` of those cores busy: the cores left to it, rounded, at least one, at most base.

    A thread team larger than the cores left waits at every barrier for a member that is
    descheduled; one thread per free core never waits for anybody. Pure."""
    return max(1, min(base, round(cores - others_busy)))


class CoreWatch:
    """Keeps torch's thread count to the cores other processes leave free, re-checked at most
    every `interval_s` (a step loop calls `adjust()` once per step; it costs two /proc reads when
    due). Where /proc is missing it never changes anything."""

    def __init__(self, base: int, cores: Iterable[int] | None = None, interval_s: float = 1.0, *,
                 clock: Callable[[], float] | None = None,
                 ticks: Callable[[list[int]], tuple[int | None, int | None]] | None = None) -> None:
        import time

        self.base = self.threads = base
        self._cores = sorted(cores) if cores is not None else usable_cores()
        self._interval_s = interval_s
        self._clock = clock or time.monotonic
        self._ticks = ticks or _busy_ticks  # (busy ticks of the cores, this process's ticks); tests pass their own
        self._last = (self._clock(), *self._ticks(self._cores))

    def adjust(self) -> int | None:
        """The new thread count when it changed (torch's pool is resized), else None."""
        now = self._clock()
        if now - self._last[0] < self._interval_s or self._last[1] is None:
            return None
        busy, mine = self._ticks(self._cores)
        if busy is None or mine is None:
            return None
        elapsed_ticks = (now - self._last[0]) * _TICKS_PER_S
        others = max(0.0, ((busy - self._last[1]) - (mine - self._last[2])) / elapsed_ticks)
        self._last = (now, busy, mine)
        threads = threads_beside(self.base, len(self._cores), others)
        if threads == self.threads:
            return None
        import torch

        torch.set_num_threads(threads)
        self.threads = threads
        return threads


_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_ticks(cores: list[int]) -> tuple[int | None, int | None]:
    """(busy ticks of `cores` since boot, this process's CPU ticks), or Nones without /proc."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None, None
    wanted, busy = {f"cpu{c}" for c in cores}, 0
    for line in lines:
        name, *values = line.split()
        if name in wanted:
            ticks = [int(v) for v in values]
            busy += sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    return busy, int(fields[11]) + int(fields[12])  # utime + stime, all threads
