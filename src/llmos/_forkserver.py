"""Start llmos's torch programs warm: forked from a process that imported torch, transformers
and MLflow once, instead of a new Python that spends its first seconds importing them.

A job of a few steps on a tiny model spends ~87% of its CPU time importing (py-spy; ~4 s of a core
on a 2-core machine, three times that on a busy one), and every job, trial and measurement pays it
again. A fork server is one long-lived process per environment, shared by every caller of this
user that starts programs with the same Python, the same code and the same environment (the key
below): it imports the heavy modules once, then, per request, forks a *supervisor* that takes the
program's environment, cores, working folder and output, starts a session of its own, and forks
the program: `python -m MODULE ARGS` run as `__main__` by runpy, exactly as a new process would
run it. The supervisor does what `llmos.executor._shim` does for a new process: passes SIGTERM,
SIGINT and SIGHUP on, waits, and reports the exit status; the program dies with it, so a SIGKILL
to the supervisor's pid stops both. A supervisor forks its program only once the caller has its
pid and says go: a request runs once, here or (where the caller gave up) as a new process.

Four kinds of callers:
- `launch`: the control plane's jobs and serve replicas. The program writes to its log, the
  daemon's death leaves it running, and the supervisor writes its exit status to a file (a job's
  `exit.json`), as the shim does. Only what runs as the daemon's user can start this way: isolated
  jobs (`users`, `sandbox`) need the shim's namespaces, and within them nothing starts warm
  (a server would outlive the job as its project's user), as `command` jobs and torchrun itself
  (its workers attach, below). A Ray worker's actor (`executor._ray_worker`) attaches instead, with
  `start="first"` and `detach=True`: its node's first program starts the node's server and runs as
  a new process.
- `attach` from a command in the foreground (`llmos train`, `llmos run`, `llmos quickstart`): the
  program gets the caller's stdin, stdout and stderr (passed over the socket), its cores, umask
  and priority; the exit status comes back on the connection, and the program dies with its
  caller. Only the second such request for a key within `_IDLE_S` starts a server.
- `attach(..., start="wait")` from a compression's measurements: output to the given files; the
  first request starts the server and waits for it, so that nothing is measured beside imports.
- `attach` from a worker that torchrun started (`python -m llmos.run JOB.json` with
  `TORCHELASTIC_RUN_ID` set, `worker_attach`): the worker process stays what torchrun watches
  (~0.1 s of imports) and waits in the foreground for its program, forked warm with the rank's
  variables; the rank's variables are per-run, so every rank, every restart and the job's
  single-process runs share one server.
The first request for a key under `launch` starts its server in the background and runs as a new
process; so does every such request while that server imports.

What a fork cannot change is read once at start: libgomp's settings (the server sets its role's, as
`llmos._threads.prepare_process` does; each program sizes its pool itself), `PYTHON*` variables,
and whatever an imported module read from the environment when it loaded. So the key holds the
whole environment except the variables llmos and torchrun set per job and read at run time
(`_PER_RUN`) and those read only when used (`_READ_WHEN_USED`), with the OpenMP settings as the
server will load them; the interpreter, its `sys.path`, the stamp of llmos's own source files and
the caller's namespaces (a program runs in its server's network and mount namespaces): a caller
with another environment, in another namespace, or with code that changed, gets a server of its
own.
A server ends after `_IDLE_S` without a request, or within half a minute once its socket is no
longer the one in its folder.
`LLMOS_WARM_START=off` in the caller's environment (or the program's) turns all of it off.
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
from typing import Any, NamedTuple, NoReturn

from llmos._threads import Role, openmp_env

__all__ = ["MODEL_STACK", "PRELOAD", "Attached", "attach", "enabled", "forked", "launch", "run_as_main",
           "server_key", "start_early", "wait_foreground", "worker_attach"]

# What a program that builds a model imports before its first line of work (`python -X importtime`).
MODEL_STACK = ("torch", "transformers.modeling_utils", "llmos.models")
_BATCH: tuple[Role, tuple[str, ...]] = ("batch", (*MODEL_STACK, "mlflow", "llmos.tracking", "llmos.run.train"))
_SERVER: tuple[Role, tuple[str, ...]] = ("server", (*MODEL_STACK, "mlflow", "llmos.registry", "llmos.serve._run",
                                                    "llmos.serve._app"))
# The programs that start warm, and their server's role and imports. Programs with the same role,
# imports and environment share one server: a compression's measurements and the jobs and
# replicas of a daemon started from the same shell.
PRELOAD: dict[str, tuple[Role, tuple[str, ...]]] = {
    "llmos.run": _BATCH,
    "llmos.serve": _SERVER,
    "llmos.compress._measure": _BATCH,  # a model's fixed-length figures, as a batch process
    "llmos.compress._served": _SERVER,  # its served figures, with the server's OpenMP settings
    "llmos.compress._served_generate": _SERVER,
}
# Set per job (by the executor, or per home: MLflow's set_tracking_uri exports its URI) and read only
# at run time: not part of the key. libgomp reads OMP_NUM_THREADS at load, but every program sizes
# its own pool (llmos._threads.apply_plan); CUDA reads its variables when a program first uses it.
_PER_RUN = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
            "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "PWD", "OLDPWD",
            "PYTEST_CURRENT_TEST", "_",
            # torchrun's, per worker: read when the process group is made (torch.distributed.elastic's agent)
            "RANK", "LOCAL_RANK", "GROUP_RANK", "ROLE_RANK", "ROLE_NAME", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
            "GROUP_WORLD_SIZE", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCH_NCCL_ASYNC_ERROR_HANDLING")
# Not set per job, but read only when used, never while a server imports its modules (none of which
# imports Ray or pytest): the server keeps the first caller's value and every program gets its own,
# so a caller that differs only in these shares the server. Test runners and Ray's driver export
# them into every child (`PYTEST_XDIST_WORKER`, `RAY_*`, `PYTHONBREAKPOINT`), shells prepend to
# PATH, tokenizers reads its switch at each call, and MLflow exports its session's markers: each
# split the servers of one machine's callers into a dozen, each paying its imports (issue 18.6).
_READ_WHEN_USED = ("PATH", "TOKENIZERS_PARALLELISM", "PYTHONBREAKPOINT", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
                   "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "_MLFLOW_TELEMETRY_SESSION_ID")
_READ_WHEN_USED_PREFIXES = ("PYTEST_", "RAY_")
_NAMESPACES = ("ipc", "mnt", "net", "pid", "user", "uts")
_IDLE_S = 600.0
_ROLE: Role = "batch"  # the server's (set as it starts)
_FORKED = False  # True in a program forked from a server (`forked`)
_STARTING_STALE_S = 300.0  # a server that has not listened by then failed to start; the next request retries


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("LLMOS_WARM_START", "on").strip().lower() not in ("off", "0", "false", "no")


def _is_per_run(name: str) -> bool:
    # llmos reads its own variables when it uses them (none at import), but for the OpenMP role
    # that `prepare_process` reads before torch loads.
    return (name in _PER_RUN or name.startswith("TORCHELASTIC_")
            or (name.startswith("LLMOS_") and name != "LLMOS_OPENMP_ROLE"))


def _source_stamp() -> str:
    """Changes whenever a file of llmos's changes: a server never runs code older than its caller's."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        with contextlib.suppress(OSError):
            st = path.stat()
            digest.update(f"{path.relative_to(root)}:{st.st_mtime_ns}:{st.st_size};".encode())
    return digest.hexdigest()


def _in_key(name: str) -> bool:
    return not (_is_per_run(name) or name in _READ_WHEN_USED or name.startswith(_READ_WHEN_USED_PREFIXES))


def server_key(module: str, env: Mapping[str, str]) -> str:
    role, preload = PRELOAD[module]
    # The OpenMP settings the server will load libgomp with (`prepare_process`), not the caller's
    # variables: a caller without them and one that inherited llmos's choice from an llmos process
    # get the same, while a user's own spin count or wait policy gets a server of its own.
    env = {**env, **openmp_env(env, role=role)}
    fixed = sorted((k, v) for k, v in env.items() if _in_key(k))
    # sys.path[0] is the caller's folder (`python -m` puts it there); a program gets its own.
    blob = json.dumps([sys.executable, sys.path[1:], role, preload, _source_stamp(), _namespaces(), fixed])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _namespaces() -> list[str]:
    """This process's namespaces ("net:[4026531840]", ...): a program runs in its server's, so a
    caller in another (a network namespace standing in for another host, a container that shares
    the folder) needs a server of its own."""
    found = []
    for ns in _NAMESPACES:
        with contextlib.suppress(OSError):
            found.append(os.readlink(f"/proc/self/ns/{ns}"))
    return found


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
    conn = _request(argv, env, {"cwd": str(cwd), "log": str(log), "cores": list(cores),
                                "exit_file": str(exit_file) if exit_file else None}, start="first")
    if conn is None:
        return None
    with conn.sock:
        return conn.pid


class Attached:
    """A program forked for a caller that waits for it in the foreground (`attach`): it writes to
    the caller's own stdout and stderr (a terminal stays a terminal: progress bars, colours) and
    reads its stdin. `wait`, `poll`, `send_signal` and `returncode` behave as `subprocess.Popen`'s;
    signals go to the supervisor, which passes SIGTERM, SIGINT and SIGHUP on."""

    def __init__(self, conn: _Conn) -> None:
        self._sock, self._reader = conn.sock, conn.reader
        self._sock.settimeout(None)  # blocking: with a timeout, Python waits for data before MSG_DONTWAIT's recv
        self.pid = conn.pid  # the supervisor's
        self.returncode: int | None = None
        self._waiting = False

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status (negative: the signal that ended it); subprocess.TimeoutExpired after
        `timeout` seconds, as Popen.wait."""
        if self.returncode is None:
            import select

            if timeout is not None and not select.select([self._sock], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            self._waiting = True
            try:
                line = self._reader.readline()
                reply = json.loads(line) if line else {}
            except (OSError, ValueError):
                reply = {}
            finally:
                self._waiting = False
            # No answer: the supervisor was killed, and the program with it.
            self.returncode = int(reply.get("exit_code", -signal.SIGKILL))
            self._sock.close()
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None and not self._waiting:  # a signal handler may poll during a wait
            try:  # without changing the socket's mode
                self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return None  # running
            except OSError:
                pass
            return self.wait()  # an answer, or the end of the connection: it is over
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            _forward(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL the supervisor; the program dies with it."""
        self.send_signal(signal.SIGKILL)


def forked() -> bool:
    """Whether this process is a program forked from a fork server (not a new Python)."""
    return _FORKED


def worker_attach(argv: Sequence[str], *, module: str = "llmos.run") -> int | None:
    """In a worker that torchrun started (`python -m llmos.run JOB.json`, `argv` its arguments):
    run the worker's program forked from a warm server and return its exit status, or None where
    it cannot (turned off, not under torchrun, no server yet) and this process runs it itself. As
    for commands in the foreground, an environment's second request starts the server: for a gang
    that is its own second worker, so the first gang runs as new processes and the next ones warm.

    This process stays the worker torchrun watches and signals: SIGTERM, SIGINT and SIGHUP are
    passed on, the program dies with it (torchrun's SIGKILL included), and a program ended by a
    signal ends this process by the same one, so torchrun reads the status a new process would
    have had. The program pins itself to its rank's cores and opens its rank's log, as here."""
    if "TORCHELASTIC_RUN_ID" not in os.environ or forked():
        return None
    proc = attach([sys.executable, "-m", module, *argv], os.environ, cwd=Path.cwd())
    if proc is None:
        return None
    code = wait_foreground(proc)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def wait_foreground(proc: subprocess.Popen | Attached) -> int:
    """Wait for a program started for a command in the foreground (a new process, or forked warm:
    `attach`) and return its exit status, passing on what the command gets: SIGTERM (from a
    scheduler or torchrun, to this process only); Ctrl-C, which reaches a new child through the
    terminal's process group but not a warm one, which leads a session of its own; SIGHUP; and
    Ctrl-Z, which stops both. Off the main thread (no signal handlers there) it only waits."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return proc.wait()

    def forward(signum: int, _frame: Any) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    warm = isinstance(proc, Attached)
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
                signal.SIGINT: signal.signal(signal.SIGINT, forward if warm else signal.SIG_IGN)}
    if warm:
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, forward)

        def suspend(_signum: int, _frame: Any) -> None:  # Ctrl-Z stops the program with this process
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGSTOP)
            os.kill(os.getpid(), signal.SIGSTOP)
            with contextlib.suppress(OSError):  # fg/bg: on again
                os.killpg(proc.pid, signal.SIGCONT)

        previous[signal.SIGTSTP] = signal.signal(signal.SIGTSTP, suspend)
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def attach(argv: Sequence[str], env: Mapping[str, str], *, cwd: Path, stdio: Sequence[int] = (0, 1, 2),
           start: str = "repeat", detach: bool = False) -> Attached | None:
    """Start `argv` forked from a warm server for a caller that waits for it (`Attached.wait`),
    with `stdio` as its stdin, stdout and stderr (this process's own by default), this process's
    cores, umask and priority; None where it cannot, and the caller starts a new process.

    `start` says what happens when no server listens for the key. "repeat" (a command in the
    foreground: `llmos train`, `llmos run`): only the second request within `_IDLE_S` starts one,
    and both run as new processes, so a one-off `llmos quickstart` does not share its cores with a
    server's imports, nor leaves one behind. "wait" (a compression's measurements, which must not
    run beside imports): start it and wait until it listens. "first" (a Ray worker's actor, which
    may run many programs on its node): the first request starts it in the background and runs
    as a new process. `detach`: a server this request starts is not this process's child (an
    actor's children end with it: Ray's `kill_child_processes_on_worker_exit`)."""
    # What a new process would inherit from this one but a fork from the server would not.
    umask = os.umask(0o077)
    os.umask(umask)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    conn = _request(argv, env, {"cwd": str(cwd), "log": None, "cores": cores, "exit_file": None, "attached": True,
                                "umask": umask, "nice": os.nice(0)}, start=start, fds=stdio, detach=detach)
    return Attached(conn) if conn is not None else None


class _Conn(NamedTuple):
    sock: socket.socket  # to the supervisor
    reader: Any  # the socket's reading side (text)
    pid: int  # the supervisor's


def _request(argv: Sequence[str], env: Mapping[str, str], fields: dict[str, Any], *, start: str,
             fds: Sequence[int] = (), detach: bool = False) -> _Conn | None:
    """Ask the server for `argv`'s key to fork a supervisor; its connection once the supervisor
    has said its pid and been told to go, or None where nothing was started (no server, not
    listening, no answer): exactly once either way, never both here and in a new process."""
    where = _server_for(argv, env)
    if where is None:
        return None
    folder, key, module = where
    address = folder / f"{key}.sock"
    request = {"module": module, "args": list(argv[3:]), "env": dict(env), **fields}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(30)
        try:
            sock.connect(str(address))
        except (FileNotFoundError, ConnectionRefusedError):
            if start == "wait":
                server = _start_server(folder, key, module, env, detach=detach)
                if not _listening(address, server):
                    sock.close()
                    return None
                sock.connect(str(address))
            else:
                if start == "first" or _asked_before(folder, key):
                    _start_server(folder, key, module, env, detach=detach)
                sock.close()
                return None
        usable = [fd for fd in fds if _is_open(fd)]
        payload = (json.dumps({**request, "fds": len(usable)}) + "\n").encode()
        if usable:
            socket.send_fds(sock, [payload[:1]], usable)  # the descriptors travel with the first byte
            payload = payload[1:]
        sock.sendall(payload)
        reader = sock.makefile("r")
        pid = int(json.loads(reader.readline() or "{}")["pid"])
        sock.sendall(b"go\n")  # from here the program runs: no new process may start in its place
    except (OSError, ValueError, KeyError, TypeError):
        sock.close()  # the supervisor, if there is one, reads no "go" and ends without running it
        return None
    return _Conn(sock, reader, pid)


def start_early(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Start the server that `argv` in `env` will be forked from, in the background, unless it
    listens or starts already: its imports run while the caller does other work."""
    where = _server_for(argv, env)
    if where is not None and not (where[0] / f"{where[1]}.sock").exists():
        _start_server(*where, env)


def _server_for(argv: Sequence[str], env: Mapping[str, str]) -> tuple[Path, str, str] | None:
    """The folder, key and module of the server that `argv` can be forked from; None where it
    cannot start warm (turned off, not a preloaded module, another Python, no private folder)."""
    if not (enabled() and enabled(env)) or len(argv) < 3 or argv[0] != sys.executable or argv[1] != "-m":
        return None
    module = argv[2]
    if module not in PRELOAD:
        return None
    folder = _folder()
    return (folder, server_key(module, env), module) if folder is not None else None


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _asked_before(folder: Path, key: str) -> bool:
    """Whether a foreground request for `key` came within `_IDLE_S`; notes this one."""
    note = folder / f"{key}.asked"
    try:
        recent = time.time() - note.stat().st_mtime < _IDLE_S
    except OSError:
        recent = False
    with contextlib.suppress(OSError):
        note.touch(mode=0o600)
    return recent


def _listening(address: Path, server: subprocess.Popen | None) -> bool:
    """Wait until the server for `address` listens: True, or False once it has failed (the one
    this process started has exited; another's marker is gone or stale) or not listened in
    `_STARTING_STALE_S`."""
    marker = address.with_suffix(".starting")
    deadline = time.monotonic() + _STARTING_STALE_S
    while time.monotonic() < deadline:
        if address.exists():
            return True
        if server is not None and server.poll() is not None:
            return False
        if server is None and not marker.exists():  # another's start ended without a socket
            return False
        time.sleep(0.05)
    return False


def _start_server(folder: Path, key: str, module: str, env: Mapping[str, str], *,
                  detach: bool = False) -> subprocess.Popen | None:
    """Start the server for `key` in the background, unless one is starting already; the one
    started here, if any (None when `detach`: it was handed to init by a double fork, and only its
    marker says whether it still starts)."""
    marker = folder / f"{key}.starting"
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with contextlib.suppress(OSError):
            if time.time() - marker.stat().st_mtime > _STARTING_STALE_S:
                marker.unlink()  # the next request starts another
        return None
    except OSError:
        return None
    os.close(fd)
    role, preload = PRELOAD[module]
    # Its own environment is the key's: the per-run variables of this first job stay out of it.
    server_env = {k: v for k, v in env.items() if not _is_per_run(k)}
    command = [sys.executable, "-m", "llmos._forkserver", str(folder / f"{key}.sock"), role, *preload]
    with open(folder / f"{key}.log", "ab") as out:
        server = subprocess.Popen([sys.executable, "-I", "-S", "-c", _DETACH, *command] if detach else command,
                                  env=server_env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=folder,
                                  start_new_session=True)
    if detach:
        server.wait()  # the go-between forks the server and exits at once
        return None
    return server


# Started by a go-between that exits once it has forked the server: its parent is then init.
_DETACH = "import os, sys\nif os.fork() == 0:\n    os.execv(sys.argv[1], sys.argv[1:])\n"


# ---- the server: python -m llmos._forkserver SOCKET ROLE MODULE... -----------------------------------


def _serve(address: Path, role: Role, preload: Sequence[str]) -> int:
    from llmos._threads import prepare_process  # stdlib only: torch is not loaded yet

    marker = address.with_suffix(".starting")
    # A mask it inherited from the thread that started it (the daemon's API thread blocks SIGTERM)
    # would pass on to every job and replica it forks: none could be stopped gracefully.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    prepare_process(role)  # before torch loads: libgomp reads its settings once
    global _ROLE
    _ROLE = role
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
        fds: list[int] = []
        try:
            conn.settimeout(10)
            request, fds = _receive(conn)
            pid = os.fork()
        except (OSError, ValueError) as exc:
            with contextlib.suppress(OSError):
                conn.sendall((json.dumps({"error": str(exc)}) + "\n").encode())
            for fd in fds:
                os.close(fd)
            conn.close()
            continue
        if pid == 0:  # outside every handler of the loop: the program's exceptions are its own
            listener.close()
            _supervise(request, conn, fds)  # returns in the program's process only
            _program(request)  # never returns
        children.add(pid)
        for fd in fds:
            os.close(fd)
        conn.close()
    with contextlib.suppress(OSError):
        if os.stat(address).st_ino == mine:
            address.unlink()
            address.with_suffix(".log").unlink()
    return 0


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One request: a JSON line, the caller's descriptors (stdin, stdout, stderr when it waits in
    the foreground) with its first byte."""
    first, fds, _flags, _addr = socket.recv_fds(conn, 65536, 3)
    try:
        data = bytearray(first)
        while not data.endswith(b"\n"):
            more = conn.recv(65536)
            if not more:
                raise ValueError("the request ended early")
            data += more
        request = json.loads(data)
        if len(fds) != request.get("fds", 0):
            raise ValueError("the request's descriptors did not arrive")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return request, fds


def _supervise(request: dict[str, Any], conn: socket.socket, fds: list[int]) -> None:
    """The forked supervisor: takes the job's session, cores, environment, folder and output, says
    its pid, and forks the program once the caller says go. Returns in the program's process; the
    supervisor itself ends in here. An attached caller (`attach`) keeps the connection and is told
    the exit status on it; a job's is written to its exit file."""
    attached = bool(request.get("attached"))
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()  # the daemon's death (or a signal to its group) leaves the job running
        if request["cores"] and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(request["cores"]))
        if "umask" in request:
            os.umask(request["umask"])
        if request.get("nice", 0) > os.nice(0):  # only ever lower its priority (raising it needs root)
            os.nice(request["nice"] - os.nice(0))
        os.environ.clear()
        os.environ.update(request["env"])
        from llmos._threads import openmp_env

        os.environ.update(openmp_env(role=_ROLE))  # what libgomp read in this server, as the program's own would say
        os.chdir(request["cwd"])
        if attached and len(fds) == 3:
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
        else:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.close(out)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        conn.settimeout(30)
        conn.sendall((json.dumps({"pid": os.getpid()}) + "\n").encode())
        if conn.makefile("rb").readline() != b"go\n":
            raise ConnectionError("the caller went away")
    except BaseException:  # nothing ran: the caller starts a new process (or is gone)
        os._exit(70)
    code = 70  # EX_SOFTWARE: the supervisor itself failed before the program ran
    try:
        command = " ".join([sys.executable, "-m", request["module"], *request["args"]])
        supervisor = os.getpid()
        program = os.fork()
        if program == 0:
            conn.close()
            _die_with(supervisor)
            _title(command)
            if attached:  # its output goes to a terminal, maybe: as a new process's would
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.reconfigure(line_buffering=stream.isatty())  # type: ignore[union-attr]
            return
        _title(f"llmos supervisor {request['log'] or 'attached'} -- {command}")
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda signum, _frame: _forward(program, signum))
        if attached:
            _unless_caller_dies(program, conn)
        _, status = os.waitpid(program, 0)
        code = os.waitstatus_to_exitcode(status)
    except BaseException as exc:  # nothing may escape into the server's loop
        with contextlib.suppress(Exception):
            print(f"error: the warm start failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    try:
        if request.get("exit_file"):
            from llmos.executor._shim import record_exit

            record_exit(request["exit_file"], code)
        if attached:
            with contextlib.suppress(OSError):
                conn.sendall((json.dumps({"exit_code": code}) + "\n").encode())
    finally:
        os._exit(code if code >= 0 else 128 - code)


def _unless_caller_dies(program: int, conn: socket.socket) -> None:
    """Return once `program` has ended; if the caller waiting for it in the foreground dies first
    (its end of the connection closes), SIGKILL this whole session, as a kill to the caller's process
    group would end a program it had started itself (and its run-folder lock is gone with it)."""
    import select

    try:
        ended = os.pidfd_open(program)
    except (AttributeError, OSError):  # Linux < 5.3: no watch
        return
    conn.settimeout(None)
    try:
        while True:
            ready, _, _ = select.select([ended, conn], [], [])
            if ended in ready:
                return
            try:
                gone = not conn.recv(1)  # it sends nothing after "go": this is the end of the connection
            except OSError:
                gone = True
            if gone:
                os.killpg(0, signal.SIGKILL)
    finally:
        os.close(ended)


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
        import llmos._forkserver as this  # the server runs this file as __main__: the module the program imports

        this._FORKED = True
    except BaseException:
        os._exit(70)
    run_as_main(request["module"], request["args"], request["cwd"])


def run_as_main(module: str, args: Sequence[str], cwd: str) -> NoReturn:
    """Run `python -m module *args` in this forked process as a new interpreter would (stdin,
    stdout, stderr and the working folder already in place). Its SystemExit (or an uncaught
    exception) ends the process through the interpreter's normal exit: atexit handlers, flushed
    output, its exit status."""
    import runpy

    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh Python process
    sys.path[0] = cwd  # as `python -m` has it
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    raise SystemExit(0)


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
