"""The one threading rule (llmos._threads): literals in, a plan out; the user's settings win."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from llmos._threads import SERVER_SPIN_COUNT, SPIN_COUNT, decide_threads, held_by_daemon, openmp_env
from llmos.paths import held_cores_file


def test_every_usable_core_divided_among_the_workers() -> None:
    assert decide_threads(None, None, [0, 1, 2, 3]).threads == 4
    assert decide_threads(None, None, [0, 1, 2, 3], workers=2).threads == 2
    assert decide_threads(None, None, [0, 1], workers=3).threads == 1  # never zero
    assert decide_threads(None, None, [0, 1, 2, 3]).cores is None  # nothing to keep off: no pinning


def test_an_explicit_field_then_omp_num_threads_win() -> None:
    plan = decide_threads(3, "2", [0, 1], held=[0, 1], field="train.num_threads")
    assert (plan.threads, plan.cores, plan.why) == (3, None, "train.num_threads: 3")
    plan = decide_threads(None, "2", [0, 1, 2, 3], held=[0, 1])
    assert (plan.threads, plan.cores, plan.beside_daemon) == (2, None, False)
    assert decide_threads(None, "zero", [0, 1]).threads == 2  # not a count: ignored


def test_beside_a_daemon_a_process_keeps_to_the_cores_it_has_not_handed_out() -> None:
    plan = decide_threads(None, None, [0, 1, 2, 3], held=[0, 1, 9])
    assert (plan.threads, plan.cores, plan.beside_daemon) == (2, (2, 3), True)
    assert "holds core(s) 0,1" in plan.why and "keeping to core(s) 2,3" in plan.why


def test_when_the_daemon_holds_every_core_one_thread_per_worker_runs_beside_it() -> None:
    plan = decide_threads(None, None, [0, 1], workers=2, held=[0, 1])
    assert (plan.threads, plan.cores, plan.beside_daemon) == (1, None, True)
    assert "llmos submit" in plan.why


@pytest.mark.parametrize(("env", "role", "expected"), [
    ({}, "batch", {"GOMP_SPINCOUNT": SPIN_COUNT, "LLMOS_OPENMP_ROLE": "batch"}),
    ({}, "server", {"GOMP_SPINCOUNT": SERVER_SPIN_COUNT, "LLMOS_OPENMP_ROLE": "server"}),
    ({"GOMP_SPINCOUNT": "300000"}, "batch", {}),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "server", {}),
    # llmos's own choice for a batch process (the CLI, the daemon) is chosen again by a server it starts
    ({"GOMP_SPINCOUNT": SPIN_COUNT, "LLMOS_OPENMP_ROLE": "batch"}, "server",
     {"GOMP_SPINCOUNT": SERVER_SPIN_COUNT, "LLMOS_OPENMP_ROLE": "server"}),
])
def test_openmp_waiting_is_set_only_where_the_user_has_not(env: dict, role: str, expected: dict) -> None:
    assert openmp_env(env, role=role) == expected  # type: ignore[arg-type]


def _publish(held: list[int], pid: int, started_s: float) -> Path:
    path = held_cores_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "started_s": started_s, "held": held}))
    return path


def test_held_cores_count_only_while_the_daemon_that_wrote_them_lives() -> None:
    assert held_by_daemon() == set()  # no daemon
    me = psutil.Process()
    _publish([0, 1], me.pid, me.create_time())
    assert held_by_daemon() == {0, 1}
    _publish([0, 1], me.pid, me.create_time() - 100)  # the pid was reused by another process
    assert held_by_daemon() == set()
    held_cores_file().write_text("{not json")
    assert held_by_daemon() == set()


def test_a_worker_process_starts_with_the_spin_count_libgomp_reads_at_load() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "LLMOS_OPENMP_ROLE")}
    code = ("import os, sys; from llmos._threads import prepare_process; prepare_process(); "
            "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [SPIN_COUNT, "False"]  # set before torch (and libgomp) loads


def _job(**resources: int):
    from llmos.spec import parse_job

    return parse_job({"name": "t", "model": {"name": "tiny-bert"}, "data": {"train": "x.csv"},
                      "resources": resources})


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable cores")
def test_a_hand_started_training_keeps_off_the_daemons_cores_and_says_so() -> None:
    from llmos.run._launch import _cpu_env

    cores = sorted(os.sched_getaffinity(0))
    me = psutil.Process()
    _publish(cores[:1], me.pid, me.create_time())
    said: list[str] = []
    env = _cpu_env(_job(), {}, said.append)
    free = ",".join(map(str, cores[1:]))
    assert env == {"GOMP_SPINCOUNT": SPIN_COUNT, "LLMOS_OPENMP_ROLE": "batch", "OMP_NUM_THREADS": str(len(cores) - 1),
                   "LLMOS_WORKER_CORES": free}
    assert len(said) == 1 and f"keeping to core(s) {free}" in said[0]
    # The user's own OMP_NUM_THREADS and OpenMP waiting are left as they are, and nothing is said.
    said.clear()
    assert _cpu_env(_job(), {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}, said.append) == {}
    assert said == []


def test_without_a_daemon_each_of_several_workers_gets_its_share_of_the_cores() -> None:
    from llmos.run._launch import _cpu_env

    env = _cpu_env(_job(procs=2), {}, print)
    assert env["OMP_NUM_THREADS"] == str(max(1, len(os.sched_getaffinity(0)) // 2))
    every = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    assert env["LLMOS_WORKER_CORES"] == f"{every};{every}"  # llmos's own count: the workers may shrink it


@pytest.mark.parametrize(("base", "cores", "others", "expected"), [
    (2, 2, 0.0, 2), (2, 2, 0.4, 2), (2, 2, 0.6, 1), (2, 2, 1.9, 1), (2, 2, 3.0, 1),
    (4, 8, 2.0, 4), (8, 8, 2.2, 6), (1, 8, 0.0, 1),
])
def test_threads_shrink_to_the_cores_other_processes_leave(base: int, cores: int, others: float,
                                                          expected: int) -> None:
    from llmos._threads import threads_beside

    assert threads_beside(base, cores, others) == expected


def test_a_watch_follows_what_other_processes_take_and_gives_the_threads_back() -> None:
    import torch

    from llmos._threads import _TICKS_PER_S, CoreWatch

    before = torch.get_num_threads()
    now = [0.0]
    busy, mine = [0], [0]  # ticks: the two cores' busy time, this process's CPU time
    watch = CoreWatch(2, [0, 1], interval_s=1.0, clock=lambda: now[0], ticks=lambda cores: (busy[0], mine[0]))

    def second(others_cores: float, own_cores: float) -> int | None:
        now[0] += 1.0
        busy[0] += round((others_cores + own_cores) * _TICKS_PER_S)
        mine[0] += round(own_cores * _TICKS_PER_S)
        return watch.adjust()

    assert second(0.0, 2.0) is None and watch.threads == 2  # alone: all of them
    assert second(1.0, 1.0) == 1  # another process keeps a core busy: one thread
    assert second(1.0, 1.0) is None and watch.threads == 1
    now[0] += 0.5
    assert watch.adjust() is None  # not due yet
    assert second(0.1, 1.0) == 2  # it has gone: both again
    assert CoreWatch(2, [0, 1], ticks=lambda cores: (None, None)).adjust() is None  # no /proc: never changes
    torch.set_num_threads(before)


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="reads /proc")
def test_a_watch_gives_up_a_thread_while_another_process_keeps_a_core_busy() -> None:
    import time

    import torch

    from llmos._threads import CoreWatch

    cores = sorted(os.sched_getaffinity(0))[:2]
    if len(cores) < 2:
        pytest.skip("needs two usable cores")
    before = torch.get_num_threads()
    watch = CoreWatch(2, cores, interval_s=0.6)
    spin = (f"import os, time\nos.sched_setaffinity(0, {{{cores[1]}}})\n"
            "end = time.time() + 30\nwhile time.time() < end: pass")
    spinner = subprocess.Popen([sys.executable, "-c", spin])
    try:
        deadline = time.monotonic() + 10
        while watch.threads != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            watch.adjust()
        assert watch.threads == 1 and torch.get_num_threads() == 1  # read from the real /proc
    finally:
        spinner.kill()
        spinner.wait()
        torch.set_num_threads(before)
