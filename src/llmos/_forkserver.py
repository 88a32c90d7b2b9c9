"""Start the control plane's torch programs (jobs and serve replicas) warm: forked from a process
that imported torch, transformers and MLflow once, instead of a new Python that spends its first
seconds importing them.

A job of a few steps on a tiny model spends ~87% of its CPU time importing (py-spy; ~4 s of a core
on a 2-core machine, three times that on a busy one), and every job and every trial pays it again.
A fork server is one long-lived process per environment, shared by every daemon of this user that
starts programs with the same Python, the same code and the same environment (the key below): it
imports the heavy modules once, then, per request, forks a *supervisor* that takes the job's
environment, cores, working folder and log, starts a session of its own (the daemon's death leaves
it running), and forks the program: `python -m MODULE ARGS` run as `__main__` by runpy, exactly as
a new process would run it. The supervisor does what `llmos.executor._shim` does for a new
process: passes SIGTERM, SIGINT and SIGHUP on, waits, and writes the exit status (a job's
`exit.json`); the program dies with it, so a SIGKILL to the supervisor's pid stops both.

What a fork cannot change is read once at start: libgomp's settings (the server sets its role's, as
`llmos._threads.prepare_process` does; each program sizes its pool itself), `PYTHON*` variables,
and whatever an imported module read from the environment when it loaded. So the key holds the
whole environment except the variables llmos sets per job and reads at run time (`_PER_RUN`), the
interpreter, its `sys.path` and the stamp of llmos's own source files: a daemon with another
environment, or code that changed, gets a server of its own. A server ends after `_IDLE_S` without
a request, or within half a minute once its socket is no longer the one in its folder.

Only what runs as the daemon's user can start this way: isolated jobs (`users`, `sandbox`) need the
shim's namespaces and run as new processes, as do `command` jobs, torchrun gangs and anything
started with `LLMOS_WARM_START=off`. The first request for a key starts its server in the
background and runs as a new process; so does every request while that server imports.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmos._threads import Role
from llmos._warm import MODEL_STACK, run_as_main

__all__ = ["PRELOAD", "enabled", "launch", "server_key"]

# What each program imports before its first line of work (`python -X importtime`).
PRELOAD: dict[str, tuple[Role, tuple[str, ...]]] = {
    "llmos.run": ("batch", (*MODEL_STACK, "mlflow", "llmos.tracking", "llmos.run.train")),
    "llmos.serve": ("server", (*MODEL_STACK, "mlflow", "llmos.registry", "llmos.serve._run", "llmos.serve._app")),
}
# Set per job (by the executor, or per home: MLflow's set_tracking_uri exports its URI) and read only
# at run time: not part of the key. libgomp reads OMP_NUM_THREADS at load, but every program sizes
# its own pool (llmos._threads.apply_plan); CUDA reads its variables when a program first uses it.
_PER_RUN = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
            "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "PWD", "OLDPWD",
            "PYTEST_CURRENT_TEST", "_")
_IDLE_S = 600.0
_STARTING_STALE_S = 300.0  # a server that has not listened by then failed to start; the next request retries


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("LLMOS_WARM_START", "on").strip().lower() not in ("off", "0", "false", "no")


def _is_per_run(name: str) -> bool:
    # llmos reads its own variables when it uses them (none at import), but for the OpenMP role
    # that `prepare_process` reads before torch loads.
    return name in _PER_RUN or (name.startswith("LLMOS_") and name != "LLMOS_OPENMP_ROLE")


def _source_stamp() -> str:
    """Changes whenever a file of llmos's changes: a server never runs code older than its caller's."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        with contextlib.suppress(OSError):
            st = path.stat()
            digest.update(f"{path.relative_to(root)}:{st.st_mtime_ns}:{st.st_size};".encode())
    return digest.hexdigest()


def server_key(module: str, env: Mapping[str, str]) -> str:
    role, preload = PRELOAD[module]
    fixed = sorted((k, v) for k, v in env.items() if not _is_per_run(k))
    # sys.path[0] is the caller's folder (`python -m` puts it there); a program gets its own.
    blob = json.dumps([sys.executable, sys.path[1:], role, preload, _source_stamp(), fixed])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _folder() -> Path | None:
    """A folder only this user can enter, with room for a socket's path (108 bytes on Linux)."""
    for base in (os.environ.get("LLMOS_RUNTIME_DIR"), os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir()):
        if not base or len(base) > 60:
            continue
        folder = Path(base) / f"llmos-warm-{os.getuid()}"
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            st = folder.lstat()
        except OSError:
            continue
        if st.st_uid == os.getuid() and not st.st_mode & 0o077 and stat.S_ISDIR(st.st_mode):
            return folder
    return None  # nowhere that is this user's alone: never talk to a server through a shared folder


def launch(argv: Sequence[str], env: Mapping[str, str], *, cwd: Path, log: Path, cores: Sequence[int],
           exit_file: Path | None) -> int | None:
    """Start `argv` (`python -m MODULE ARGS`) forked from a warm server; the pid of its supervisor
    (a session leader), or None where it cannot start that way: the caller starts a new process.

    The supervisor writes `exit_file` (`{"exit_code", "ended_s"}`) when the program ends, as the
    shim writes `exit.json`; the program dies with its supervisor (a SIGKILL to the pid stops both)."""
    if not (enabled() and enabled(env)) or len(argv) < 3 or argv[0] != sys.executable or argv[1] != "-m":
        return None
    module = argv[2]
    if module not in PRELOAD:
        return None
    folder = _folder()
    if folder is None:
        return None
    key = server_key(module, env)
    address = folder / f"{key}.sock"
    request = {"module": module, "args": list(argv[3:]), "env": dict(env), "cwd": str(cwd), "log": str(log),
               "cores": list(cores), "exit_file": str(exit_file) if exit_file else None}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(30)
            conn.connect(str(address))
            conn.sendall((json.dumps(request) + "\n").encode())
            reply = json.loads(conn.makefile("r").readline() or "{}")
        return int(reply["pid"]) if "pid" in reply else None
    except (FileNotFoundError, ConnectionRefusedError):
        _start_server(folder, key, module, env)
        return None
    except (OSError, ValueError, KeyError):
        return None


def _start_server(folder: Path, key: str, module: str, env: Mapping[str, str]) -> None:
    """Start the server for `key` in the background, unless one is starting already."""
    marker = folder / f"{key}.starting"
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with contextlib.suppress(OSError):
            if time.time() - marker.stat().st_mtime > _STARTING_STALE_S:
                marker.unlink()  # the next request starts another
        return
    except OSError:
        return
    os.close(fd)
    role, preload = PRELOAD[module]
    # Its own environment is the key's: the per-run variables of this first job stay out of it.
    server_env = {k: v for k, v in env.items() if not _is_per_run(k)}
    with open(folder / f"{key}.log", "ab") as out:
        subprocess.Popen([sys.executable, "-m", "llmos._forkserver", str(folder / f"{key}.sock"), role, *preload],
                         env=server_env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=folder,
                         start_new_session=True)


# ---- the server: python -m llmos._forkserver SOCKET ROLE MODULE... -----------------------------------


def _serve(address: Path, role: Role, preload: Sequence[str]) -> int:
    from llmos._threads import prepare_process  # stdlib only: torch is not loaded yet

    marker = address.with_suffix(".starting")
    # A mask it inherited from the thread that started it (the daemon's API thread blocks SIGTERM)
    # would pass on to every job and replica it forks: none could be stopped gracefully.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    prepare_process(role)  # before torch loads: libgomp reads its settings once
    try:
        import importlib

        for name in preload:
            importlib.import_module(name)
    except Exception as exc:  # the marker stays until it is stale: requests run as new processes
        print(f"llmos fork server: importing {name}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    import gc

    import setproctitle

    setproctitle.getproctitle()  # finds the command line's memory now, before any child rewrites its environment
    # What the imports made stays where it is: the children's collector never walks (and so never
    # copies the pages of) the ~600,000 objects they share with the server.
    gc.freeze()
    children: set[int] = set()

    def reap(_signum: int, _frame: object) -> None:
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    children.discard(pid)

    signal.signal(signal.SIGCHLD, reap)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staged = address.with_name(f"{address.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        staged.unlink()
    listener.bind(str(staged))
    os.chmod(staged, 0o600)
    listener.listen(16)
    os.replace(staged, address)  # clients see it only once it listens
    mine = os.stat(address).st_ino
    with contextlib.suppress(FileNotFoundError):
        marker.unlink()
    print(f"llmos fork server {os.getpid()}: ready ({', '.join(preload)})", file=sys.stderr, flush=True)
    listener.settimeout(30)
    last = time.monotonic()
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            try:
                ours = os.stat(address).st_ino == mine
            except OSError:
                ours = False
            if not ours or time.monotonic() - last > _IDLE_S:
                break
            continue
        last = time.monotonic()
        try:
            conn.settimeout(10)
            request = json.loads(conn.makefile("r").readline())
            pid = os.fork()
        except (OSError, ValueError) as exc:
            with contextlib.suppress(OSError):
                conn.sendall((json.dumps({"error": str(exc)}) + "\n").encode())
            conn.close()
            continue
        if pid == 0:  # outside every handler of the loop: the program's exceptions are its own
            listener.close()
            conn.close()
            _supervise(request)  # returns in the program's process only
            _program(request)  # never returns
        children.add(pid)
        with contextlib.suppress(OSError):
            conn.sendall((json.dumps({"pid": pid}) + "\n").encode())
        conn.close()
    with contextlib.suppress(OSError):
        if os.stat(address).st_ino == mine:
            address.unlink()
            address.with_suffix(".log").unlink()
    return 0


def _supervise(request: dict[str, Any]) -> None:
    """The forked supervisor: takes the job's session, cores, environment, folder and log, then
    forks the program. Returns in the program's process; the supervisor itself ends in here."""
    code = 70  # EX_SOFTWARE: the supervisor itself failed before the program ran
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()  # the daemon's death (or a signal to its group) leaves the job running
        if request["cores"] and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(request["cores"]))
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        command = " ".join([sys.executable, "-m", request["module"], *request["args"]])
        supervisor = os.getpid()
        program = os.fork()
        if program == 0:
            _die_with(supervisor)
            _title(command)
            return
        _title(f"llmos supervisor {request['log']} -- {command}")
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda signum, _frame: _forward(program, signum))
        _, status = os.waitpid(program, 0)
        code = os.waitstatus_to_exitcode(status)
    except BaseException as exc:  # nothing may escape into the server's loop
        with contextlib.suppress(Exception):
            print(f"error: the warm start failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    try:
        if request.get("exit_file"):
            from llmos.executor._shim import record_exit

            record_exit(request["exit_file"], code)
    finally:
        os._exit(code if code >= 0 else 128 - code)


def _die_with(parent: int) -> None:
    """SIGKILL this process when `parent` dies: stopping a job or replica by its supervisor's pid
    (the handle the control plane keeps) stops the program too, as for a program under the shim."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the line above
        os._exit(70)


def _title(text: str) -> None:
    """What ps, top and psutil show for this process (otherwise the server's command line)."""
    import setproctitle

    setproctitle.setproctitle(text)


def _forward(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _program(request: dict[str, Any]) -> None:
    """Run `python -m MODULE ARGS` in this process as a new interpreter would."""
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        _reseed()
    except BaseException:
        os._exit(70)
    run_as_main(request["module"], request["args"], request["cwd"])


def _reseed() -> None:
    """A new process draws fresh random state; a fork would share the server's (Python's `random`
    reseeds itself after a fork, NumPy does not)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def main(argv: list[str]) -> int:
    from llmos._exit import skip_collection_at_exit

    skip_collection_at_exit()  # see llmos._exit
    if len(argv) < 2 or argv[1] not in ("batch", "server"):
        print("usage: python -m llmos._forkserver SOCKET batch|server MODULE...", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return _serve(Path(argv[0]), argv[1], argv[2:])  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
