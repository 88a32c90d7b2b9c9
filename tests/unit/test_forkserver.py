"""llmos._forkserver: programs forked from a warm server run as new processes would (their own
environment, folder, cores, output, exit status and signals), the supervisor records the exit as the
shim does, and a server is shared only by callers with the same environment."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from llmos import _forkserver

PROGRAM = """
import json, os, sys, time
print(json.dumps({"pid": os.getpid(), "argv": sys.argv, "cwd": os.getcwd(), "X": os.environ.get("X"),
                  "daemon_only": os.environ.get("DAEMON_ONLY"), "cores": sorted(os.sched_getaffinity(0)),
                  "main": __name__, "path0": sys.path[0]}), flush=True)
if sys.argv[1] == "sleep":
    time.sleep(60)
if sys.argv[1] == "raise":
    raise RuntimeError("the program failed")
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture
def warm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    runtime = Path(tempfile.mkdtemp(prefix="llmos-test-"))  # short: a socket's path has 108 bytes
    monkeypatch.setenv("LLMOS_RUNTIME_DIR", str(runtime))
    monkeypatch.setitem(_forkserver.PRELOAD, "probe", ("batch", ("json",)))
    (tmp_path / "probe.py").write_text(PROGRAM)
    yield runtime
    for log in (runtime / f"llmos-warm-{os.getuid()}").glob("*.log"):  # end the servers this test started
        for pid in re.findall(r"fork server (\d+): ready", log.read_text()):
            os.kill(int(pid), signal.SIGKILL)
    shutil.rmtree(runtime)


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], **extra}


def _launch(tmp_path: Path, name: str, arg: str, env: dict[str, str], wait_s: float = 120) -> tuple[int, Path]:
    """The first call for a key starts its server and answers None; the calls after it fork."""
    folder = tmp_path / name
    folder.mkdir()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        pid = _forkserver.launch([sys.executable, "-m", "probe", arg], env, cwd=tmp_path, log=folder / "output.log",
                                 cores=[0], exit_file=folder / "exit.json")
        if pid is not None:
            return pid, folder
        time.sleep(0.2)
    raise AssertionError("the fork server did not start")


def _exit(folder: Path, timeout_s: float = 30) -> int:
    deadline = time.monotonic() + timeout_s
    while not (folder / "exit.json").exists():
        assert time.monotonic() < deadline, "no exit.json"
        time.sleep(0.05)
    return json.loads((folder / "exit.json").read_text())["exit_code"]


def test_a_forked_program_runs_as_a_new_process_would(warm: Path, tmp_path: Path) -> None:
    pid, folder = _launch(tmp_path, "a", "3", _env(X="one"))
    assert _exit(folder) == 3
    seen = json.loads((folder / "output.log").read_text().splitlines()[0])
    assert seen["X"] == "one" and seen["daemon_only"] is None  # the request's environment, nothing else
    assert seen["argv"] == [str(tmp_path / "probe.py"), "3"] and seen["main"] == "__main__"
    assert seen["cwd"] == str(tmp_path) and seen["path0"] == str(tmp_path) and seen["cores"] == [0]
    assert seen["pid"] != pid  # the program is the supervisor's child; the supervisor leads its session
    assert os.getsid(os.getpid()) != pid


def test_an_uncaught_exception_and_a_signal_end_the_program_with_their_status(warm: Path, tmp_path: Path) -> None:
    env = _env(X="two")
    # Started from a thread that blocks SIGTERM (the daemon's API thread does): its forks must not.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        _, folder = _launch(tmp_path, "a", "0", env)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    assert _exit(folder) == 0
    _, failed = _launch(tmp_path, "b", "raise", env, wait_s=5)  # the same key: forked at once
    assert _exit(failed) == 1
    assert "RuntimeError: the program failed" in (failed / "output.log").read_text()
    pid, stopped = _launch(tmp_path, "c", "sleep", env, wait_s=5)
    while not (stopped / "output.log").exists() or not (stopped / "output.log").read_text():
        time.sleep(0.05)
    program = json.loads((stopped / "output.log").read_text().splitlines()[0])["pid"]
    # ps and top show the program's own command line, and the supervisor's, not the server's.
    assert " ".join(psutil.Process(program).cmdline()).rstrip().endswith("-m probe sleep")
    assert "llmos supervisor" in " ".join(psutil.Process(pid).cmdline())
    os.kill(pid, signal.SIGTERM)  # to the supervisor, as the executor's terminate does: passed on
    assert _exit(stopped) == -signal.SIGTERM
    # A SIGKILL to the supervisor (the pid the control plane keeps) takes the program with it.
    pid, killed = _launch(tmp_path, "d", "sleep", env, wait_s=5)
    while not (killed / "output.log").exists() or not (killed / "output.log").read_text():
        time.sleep(0.05)
    program = psutil.Process(json.loads((killed / "output.log").read_text().splitlines()[0])["pid"])
    os.kill(pid, signal.SIGKILL)
    program.wait(timeout=10)
    assert not (killed / "exit.json").exists()  # nobody was left to record it: the executor's poll kills the group


def test_a_server_is_shared_only_by_the_same_environment(warm: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    base = _env(X="three")
    key = _forkserver.server_key("probe", base)
    # What the executor sets per job does not make another server; anything else does.
    assert _forkserver.server_key("probe", {**base, "OMP_NUM_THREADS": "1", "LLMOS_JOB_ID": "7",
                                            "MLFLOW_TRACKING_URI": "sqlite:////elsewhere.db"}) == key
    # Nor what torchrun sets per worker: every rank and restart of a gang shares the server.
    assert _forkserver.server_key("probe", {**base, "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2",
                                            "MASTER_ADDR": "10.0.0.2", "MASTER_PORT": "29500",
                                            "TORCHELASTIC_RUN_ID": "abc", "TORCHELASTIC_RESTART_COUNT": "1",
                                            "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"}) == key
    assert _forkserver.server_key("probe", {**base, "HF_HUB_OFFLINE": "1"}) != key
    # Nor what is read only when used: a test runner's worker, Ray's driver, a longer PATH.
    assert _forkserver.server_key("probe", {**base, "PYTEST_XDIST_WORKER": "gw7", "RAY_AUTH_MODE": "token",
                                            "PATH": f"/elsewhere/bin:{base.get('PATH', '')}",
                                            "TOKENIZERS_PARALLELISM": "false"}) == key
    # The OpenMP settings count as libgomp will load them: llmos's own choice, inherited from an
    # llmos process of either role, is the server's anyway; a user's own spin count is not.
    bare = {k: v for k, v in base.items() if k not in ("GOMP_SPINCOUNT", "LLMOS_OPENMP_ROLE")}
    assert _forkserver.server_key("probe", bare) == key
    assert _forkserver.server_key("probe", {**bare, "GOMP_SPINCOUNT": "10000", "LLMOS_OPENMP_ROLE": "server"}) == key
    assert _forkserver.server_key("probe", {**bare, "GOMP_SPINCOUNT": "10000"}) != key
    assert _forkserver.server_key("probe", {**bare, "OMP_WAIT_POLICY": "PASSIVE"}) != key
    monkeypatch.setenv("LLMOS_WARM_START", "off")
    assert _forkserver.launch([sys.executable, "-m", "probe", "0"], base, cwd=tmp_path, log=tmp_path / "log",
                              cores=[], exit_file=None) is None
    assert not list(warm.rglob("*.sock")) and not list(warm.rglob("*.starting"))  # nothing started either
    monkeypatch.delenv("LLMOS_WARM_START")
    # Not a program the servers preload, or a python that is not this one: a new process.
    assert _forkserver.launch([sys.executable, "-m", "other", "0"], base, cwd=tmp_path, log=tmp_path / "log",
                              cores=[], exit_file=None) is None
    assert _forkserver.launch(["python9", "-m", "probe", "0"], base, cwd=tmp_path, log=tmp_path / "log",
                              cores=[], exit_file=None) is None
    assert not list(warm.rglob("*.starting"))


def _attach(tmp_path: Path, arg: str, env: dict[str, str], wait_s: float = 120) -> _forkserver.Attached:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        proc = _forkserver.attach([sys.executable, "-m", "probe", arg], env, cwd=tmp_path)
        if proc is not None:
            return proc
        time.sleep(0.2)
    raise AssertionError("the fork server did not start")


def test_a_foreground_program_writes_to_its_callers_output_and_its_status_comes_back(
        warm: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    env = _env(X="fg")
    # A command run once starts no server (nothing left behind, no imports beside it)...
    assert _forkserver.attach([sys.executable, "-m", "probe", "0"], env, cwd=tmp_path) is None
    assert not list(warm.rglob("*.sock")) and not list(warm.rglob("*.starting"))
    # ...the second within the idle time does, and the ones after it are forked.
    assert _forkserver.attach([sys.executable, "-m", "probe", "0"], env, cwd=tmp_path) is None
    assert list(warm.rglob("*.starting")) or list(warm.rglob("*.sock"))
    proc = _attach(tmp_path, "4", env)
    assert proc.wait() == 4 and proc.returncode == 4 and proc.poll() == 4
    seen = json.loads(capfd.readouterr().out.strip().splitlines()[-1])  # this process's own stdout
    assert seen["X"] == "fg" and seen["argv"] == [str(tmp_path / "probe.py"), "4"] and seen["cwd"] == str(tmp_path)
    assert seen["cores"] == sorted(os.sched_getaffinity(0))  # the caller's cores, as a new process would have
    mask = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(mask)})  # as under `taskset -c 0`
    try:
        proc = _attach(tmp_path, "0", env, wait_s=5)
    finally:
        os.sched_setaffinity(0, mask)
    assert proc.wait() == 0
    assert json.loads(capfd.readouterr().out.strip().splitlines()[-1])["cores"] == [min(mask)]
    proc = _attach(tmp_path, "sleep", env, wait_s=5)
    while proc.poll() is None and "sleep" not in capfd.readouterr().out:
        time.sleep(0.05)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)  # to the supervisor, passed on: as Popen.send_signal to a new process
    assert proc.wait() == -signal.SIGTERM
    proc = _attach(tmp_path, "sleep", env, wait_s=5)
    os.kill(proc.pid, signal.SIGKILL)  # the supervisor killed: nothing can say how it ended
    assert proc.wait() == -signal.SIGKILL


CALLER = """
import json, sys, time
from pathlib import Path
from llmos import _forkserver
_forkserver.PRELOAD["probe"] = ("batch", ("json",))
while (proc := _forkserver.attach([sys.executable, "-m", "probe", "sleep"], json.loads(sys.argv[1]),
                                  cwd=Path(sys.argv[2]))) is None:
    time.sleep(0.2)
proc.wait()
"""


def test_a_foreground_program_dies_with_its_caller(warm: Path, tmp_path: Path) -> None:
    """A kill to the caller's process group would end a program it started as a new process; one
    it was forked from a server for is in a session of its own, and must end all the same."""
    import subprocess

    env = _env(X="caller")
    (tmp_path / "out").write_text("")
    with open(tmp_path / "out", "w") as out:
        caller = subprocess.Popen([sys.executable, "-c", CALLER, json.dumps(env), str(tmp_path)], stdout=out,
                                  env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.monotonic() + 120
    while not (tmp_path / "out").read_text():
        assert time.monotonic() < deadline and caller.poll() is None, "the program did not start"
        time.sleep(0.1)
    program = psutil.Process(json.loads((tmp_path / "out").read_text().splitlines()[0])["pid"])
    caller.kill()
    caller.wait()
    program.wait(timeout=10)  # gone with it


def test_a_request_whose_caller_goes_away_before_go_runs_nothing(warm: Path, tmp_path: Path) -> None:
    """Exactly once: a caller that gave up (its timeout) starts a new process instead, so the
    supervisor it was given must not run the program."""
    env = _env(X="once")
    _launch(tmp_path, "first", "0", env)  # the server is up
    key = _forkserver.server_key("probe", env)
    address = warm / f"llmos-warm-{os.getuid()}" / f"{key}.sock"
    folder = tmp_path / "abandoned"
    folder.mkdir()
    request = {"module": "probe", "args": ["0"], "env": env, "cwd": str(tmp_path), "log": str(folder / "output.log"),
               "cores": [], "exit_file": str(folder / "exit.json"), "fds": 0}
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(str(address))
        conn.sendall((json.dumps(request) + "\n").encode())
        supervisor = psutil.Process(json.loads(conn.makefile("r").readline())["pid"])
    supervisor.wait(timeout=30)  # it ends (the server reaps it)...
    assert not (folder / "output.log").read_text() and not (folder / "exit.json").exists()  # ...having run nothing


STATEFUL = """
import json, os, signal, sys
import probe_state  # a module of the test's folder, imported by the server: each program finds it unchanged
probe_state.count += 1
print(json.dumps({"count": probe_state.count, "spin": os.environ.get("GOMP_SPINCOUNT"), "stdin": sys.stdin.read(),
                  "sigint": signal.getsignal(signal.SIGINT) is signal.default_int_handler, "pid": os.getpid()}))
print("to stderr", file=sys.stderr)
if sys.argv[1:] == ["sleep"]:
    import time
    time.sleep(60)
"""


def test_a_measuring_program_waits_for_its_server_and_writes_to_the_files_it_was_given(
        warm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compression's measurements: the first request starts the server and waits for it (no
    measurement runs beside imports); output to the caller's files; each program starts from the
    server's state, not its sibling's; a program over its time is killed and the server goes on."""
    import subprocess

    (tmp_path / "stateful.py").write_text(STATEFUL)
    (tmp_path / "probe_state.py").write_text("count = 0\n")
    monkeypatch.setitem(_forkserver.PRELOAD, "stateful", ("server", ("json", "probe_state")))
    monkeypatch.syspath_prepend(str(tmp_path))  # where the server finds probe_state (sys.path is part of the key)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path)}
    log = tmp_path / "measure.log"

    def run(*args: str, timeout_s: float | None = None) -> tuple[int, dict]:
        with open(os.devnull, "rb") as null, log.open("wb") as out:
            proc = _forkserver.attach([sys.executable, "-m", "stateful", *args], env, cwd=tmp_path,
                                      stdio=(null.fileno(), out.fileno(), out.fileno()), start="wait")
            assert proc is not None  # started and waited for, never a new process
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait(), {}
        return code, json.loads(next(line for line in log.read_text().splitlines() if line.startswith("{")))

    first, second = run(), run()
    for code, seen in (first, second):
        assert code == 0 and seen["count"] == 1 and seen["stdin"] == "" and seen["sigint"]
        assert seen["spin"] == "10000"  # the server role's OpenMP settings
    assert first[1]["pid"] != second[1]["pid"]
    assert "to stderr" in log.read_text()
    started = time.monotonic()
    assert run("sleep", timeout_s=1)[0] == -signal.SIGKILL and time.monotonic() - started < 30
    assert run()[0] == 0  # the server goes on


def test_a_server_that_cannot_import_leaves_the_caller_to_start_a_new_process(warm: Path, tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_forkserver.PRELOAD, "probe", ("batch", ("json", "no_such_module_here")))
    started = time.monotonic()
    assert _forkserver.attach([sys.executable, "-m", "probe", "0"], _env(), cwd=tmp_path, start="wait") is None
    assert time.monotonic() - started < 120
    assert "no_such_module_here" in next(warm.rglob("*.log")).read_text()


def test_a_caller_in_another_network_namespace_gets_a_server_of_its_own(tmp_path: Path) -> None:
    """A program runs in its server's namespaces: a caller in another (a network namespace standing
    in for another host) must not be given a program on this one's network."""
    import subprocess

    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) for a network namespace")
    show = ("import json, sys; from llmos import _forkserver; "
            "print(_forkserver.server_key('llmos.run', json.load(sys.stdin)))")
    env = _env(X="ns")

    def key(*prefix: str) -> str:
        return subprocess.run([*prefix, sys.executable, "-c", show], input=json.dumps(env), capture_output=True,
                              text=True, check=True).stdout.strip()

    here = key()
    assert key() == here != key("unshare", "--net")


WORKER = """
import os, sys
from llmos import _forkserver
_forkserver.PRELOAD["probe"] = ("batch", ("json",))
code = _forkserver.worker_attach(sys.argv[1:], module="probe")
print("worker", os.getpid(), "cold" if code is None else "warm", flush=True)
sys.exit(99 if code is None else code)
"""


def test_a_torchrun_worker_runs_its_program_warm_and_passes_signals_and_its_status(warm: Path,
                                                                                tmp_path: Path) -> None:
    """What torchrun starts (`python -m llmos.run JOB.json` with its per-worker variables) forks the
    program from the server once one runs; the worker torchrun watches passes its signals on and
    ends as the program did: by its exit code, or by the same signal."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "X": "gang", "TORCHELASTIC_RUN_ID": "run-1",
           "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}

    def worker(arg: str, rank: str = "1") -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", WORKER, arg], env={**env, "RANK": rank}, cwd=tmp_path,
                                stdout=subprocess.PIPE, text=True)

    # Not under torchrun, or with warm starts off: the worker runs its program itself.
    plain = {k: v for k, v in env.items() if k != "TORCHELASTIC_RUN_ID"}
    done = subprocess.run([sys.executable, "-c", WORKER, "0"], env=plain, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 99 and not list(warm.rglob("*.sock")) and not list(warm.rglob("*.starting"))
    # A gang's two workers: the second request within the idle time starts the server; both run cold.
    assert [worker("0", rank).wait() for rank in ("0", "1")] == [99, 99]
    deadline = time.monotonic() + 120
    while (proc := worker("3")).wait() == 99:
        assert time.monotonic() < deadline, "the fork server did not start"
        time.sleep(0.2)
    out = proc.stdout.read().splitlines()  # type: ignore[union-attr]
    seen = json.loads(out[0])
    assert proc.returncode == 3 and out[-1] == f"worker {proc.pid} warm"
    assert seen["X"] == "gang" and seen["main"] == "__main__" and seen["pid"] != proc.pid
    assert json.loads(out[0])["argv"] == [str(tmp_path / "probe.py"), "3"]

    proc = worker("sleep")
    program = psutil.Process(json.loads(proc.stdout.readline())["pid"])  # type: ignore[union-attr]
    proc.send_signal(signal.SIGTERM)  # torchrun stopping its workers: the program gets it...
    assert proc.wait(timeout=30) == -signal.SIGTERM  # ...and the worker ends by it, as the program did
    assert not program.is_running()
    proc = worker("sleep")
    program = psutil.Process(json.loads(proc.stdout.readline())["pid"])  # type: ignore[union-attr]
    proc.kill()  # torchrun's last resort: the program goes with the worker
    proc.wait()
    program.wait(timeout=10)


def test_a_ray_workers_program_forks_warm_from_a_server_that_is_not_the_actors_child(warm: Path,
                                                                                   tmp_path: Path) -> None:
    """The actor that runs a job's worker on a Ray node (`executor._ray_worker.Worker`, called here
    as the actor would call it): its first program starts the node's server, detached (Ray ends an
    actor's children with it), and runs as a new process; the next one is forked warm, writes to
    its log, and a SIGTERM reaches it once through its supervisor; its exit is recorded as a new
    process's would be."""
    from llmos.executor._ray_worker import Worker

    def start(name: str, arg: str) -> tuple[Worker, Path]:
        worker, folder = Worker(), tmp_path / name
        folder.mkdir()
        worker.start([sys.executable, "-m", "probe", arg], _env(X="ray"), str(tmp_path), str(folder / "out.log"),
                     str(folder / "exit.json"))  # the same environment: the same server
        return worker, folder

    first, folder = start("first", "4")
    assert isinstance(first.proc, subprocess.Popen) and _exit(folder) == 4
    deadline = time.monotonic() + 120
    while not list(warm.rglob("*.sock")):
        assert time.monotonic() < deadline, "the fork server did not start"
        time.sleep(0.2)
    server = psutil.Process(int(re.findall(r"fork server (\d+): ready", next(warm.rglob("*.log")).read_text())[0]))
    assert server.ppid() != os.getpid(), "the server is the caller's child: it would end with the actor"

    second, folder = start("second", "sleep")
    assert not isinstance(second.proc, subprocess.Popen)
    deadline = time.monotonic() + 30
    while not (folder / "out.log").read_text():
        assert time.monotonic() < deadline, "the program wrote nothing to its log"
        time.sleep(0.05)
    seen = json.loads((folder / "out.log").read_text().splitlines()[0])
    assert seen["X"] == "ray" and psutil.Process(seen["pid"]).ppid() == second.proc.pid  # its supervisor's
    assert second.state() == (True, None)
    second.signal(signal.SIGTERM)
    assert _exit(folder) == -signal.SIGTERM and second.state() == (True, -signal.SIGTERM)
