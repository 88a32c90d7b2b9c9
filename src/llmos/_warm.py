"""Start short torch programs from a process that has imported torch once (a "zygote").

A process that loads torch and transformers spends ~3 s of a CPU core on imports before its first
line of work; a compression that measures each of its models in a fresh process pays that for
every model, twice. A `Zygote` is one process that imports the heavy modules once, with the
OpenMP settings of its role already in its environment (libgomp reads them once, when torch
loads it), and then forks a child per program: `python -m MODULE ARGS...` as a fresh process
would run it (the module runs as `__main__`, its exit status and output are its own), starting
with every import already done.

Forking is safe here because the zygote never runs torch work itself: it holds no OpenMP thread
pool, no model and no open connection, only imported modules. Each child is a new process: it
inherits nothing from its siblings (thread pools, compiled graphs, memory high-water marks), as
one started by `subprocess` would not. The zygote stays in its caller's process group, so a
signal to the group reaches the children too, and it exits when its caller closes the pipe (or
dies).

    with Zygote("batch", ["torch", "transformers"], env) as z:  # imports in the background
        code = z.run("llmos.compress._measure", [req, out], stdout=log, stderr=log, timeout_s=600)
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

from llmos._threads import Role

__all__ = ["MODEL_STACK", "Role", "Zygote", "ZygoteError", "run_as_main"]  # Role: llmos._threads's, re-exported

# What a program that builds a model imports before its first line of work: a warm process's preload.
MODEL_STACK = ("torch", "transformers.modeling_utils", "llmos.models")

_START_TIMEOUT_S = 300  # the imports on a busy 2-core machine


class ZygoteError(RuntimeError):
    """The zygote could not start or is gone. `program_started`: it went while a program it had
    forked was running (a signal to the process group, most likely), so that program's outcome is
    unknown; otherwise the program never started and may run in a fresh process instead."""

    def __init__(self, message: str, program_started: bool = False) -> None:
        super().__init__(message)
        self.program_started = program_started


class Zygote:
    """One warm process for one role and environment; `run` one program at a time. It starts
    importing at once; the first `run` (or `wait_ready`) waits for it."""

    def __init__(self, role: Role, preload: Sequence[str], env: Mapping[str, str] | None = None,
                 stderr: Path | None = None) -> None:
        self.role, self.preload = role, tuple(preload)
        log = open(stderr, "ab") if stderr else subprocess.DEVNULL  # noqa: SIM115 - closed in close()
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", "llmos._warm", role, *self.preload],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                          env=dict(os.environ if env is None else env))
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, name="zygote-replies", daemon=True).start()
        self._ready = False  # its imports run while the caller goes on; the first `run` waits for them

    def wait_ready(self) -> None:
        """Wait until the zygote has imported everything; ZygoteError if it could not."""
        if self._ready:
            return
        try:
            ready = self._reply(_START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            ready = {"error": f"no answer in {_START_TIMEOUT_S} s"}
        if not ready.get("ready"):
            self.close()
            raise ZygoteError(f"the warm process did not start: {ready.get('error', 'no answer')}")
        self._ready = True

    def run(self, module: str, args: Sequence[str], *, stdout: Path, stderr: Path, timeout_s: float,
            cwd: Path | None = None) -> int:
        """Run `python -m module *args` forked from the zygote; its exit status (negative: the
        signal that ended it). Raises subprocess.TimeoutExpired after `timeout_s` (the child is
        killed first) and ZygoteError if the zygote itself is gone (see its program_started)."""
        self.wait_ready()
        request = {"module": module, "args": list(args), "stdout": str(stdout), "stderr": str(stderr),
                   "cwd": str(cwd or Path.cwd())}
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write((json.dumps(request) + "\n").encode())
            self._proc.stdin.flush()
        except OSError as exc:
            raise ZygoteError(f"the warm process is gone: {exc}") from None
        pid = int(self._reply(60)["pid"])
        try:
            return int(self._reply(timeout_s)["returncode"])
        except ZygoteError as exc:
            raise ZygoteError(f"{exc} while program {pid} ran", program_started=True) from None
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            self._reply(60)  # its exit, reaped by the zygote
            raise subprocess.TimeoutExpired([module, *args], timeout_s) from None

    def close(self) -> None:
        """End the zygote (a child still running is left to finish; none is, between `run`s)."""
        if self._proc.stdin and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self._replies.put(json.loads(line))
            except ValueError:
                continue
        self._replies.put(None)  # the zygote's end

    def _reply(self, timeout_s: float) -> dict[str, Any]:
        try:
            reply = self._replies.get(timeout=timeout_s)
        except queue.Empty:
            raise subprocess.TimeoutExpired("llmos._warm", timeout_s) from None
        if reply is None:
            self._replies.put(None)  # every later call sees the end too
            code = self._proc.poll()
            raise ZygoteError(f"the warm process ended (exit {code})")
        return reply


# ---- the zygote's side: python -m llmos._warm ROLE MODULE... -------------------------------------


def _serve(role: Role, preload: Sequence[str]) -> None:
    # Replies go to a private copy of the pipe; fd 1 becomes fd 2, so that a module printing while
    # it imports cannot garble them.
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    from llmos._threads import prepare_process  # stdlib only: torch is not loaded yet

    prepare_process(role)  # before torch loads
    try:
        import importlib

        for name in preload:
            importlib.import_module(name)
    except Exception as exc:  # any import failure: the caller runs fresh processes instead
        replies.write(json.dumps({"error": f"importing {name}: {type(exc).__name__}: {exc}"}) + "\n")
        return
    replies.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    while line := sys.stdin.readline():
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            replies.close()
            _child(request)  # never returns: the program ends this process
        replies.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")


def _child(request: dict[str, Any]) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(target, fd)
        os.close(target)
    os.chdir(request["cwd"])
    run_as_main(request["module"], request["args"], request["cwd"])


def run_as_main(module: str, args: Sequence[str], cwd: str, stdin: str | None = os.devnull) -> NoReturn:
    """Run `python -m module *args` in this forked process as a new interpreter would (stdout
    already in place, `cwd` already the working folder; `stdin` opened as its stdin, or None where
    fd 0 is already its own). Its SystemExit (or an uncaught exception) ends the process through the
    interpreter's normal exit: atexit handlers, flushed output, its exit status.
    llmos._forkserver's programs start here too."""
    import runpy

    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh Python process
    if stdin is not None:
        sys.stdin = open(stdin)  # noqa: SIM115 - this process's stdin from now on
    sys.path[0] = cwd  # as `python -m` has it
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    from llmos._exit import skip_collection_at_exit

    skip_collection_at_exit()  # see llmos._exit
    if not argv or argv[0] not in ("batch", "server"):
        print("usage: python -m llmos._warm batch|server MODULE...", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller's Ctrl-C is for the program, not for us
    _serve(argv[0], argv[1:])  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
