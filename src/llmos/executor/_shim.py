"""The supervisor of one attempt: `python _shim.py ATTEMPT_DIR CORES [SANDBOX] -- PROGRAM ARGS...`.

The executor starts this file (by path, so that it imports nothing but the standard library) in
a session of its own. It pins itself to CORES (inherited by the program and every worker it
starts), runs the program, passes SIGTERM and SIGINT on, and writes `exit.json` when the program
ends. The file outlives the daemon: a daemon restarted after a crash reads how an attempt it
could not wait for ended.

SANDBOX (JSON, `llmos.executor._sandbox.Sandbox`) isolates the program from the control plane:
the shim enters a mount namespace of its own (and a user namespace when it is not root), lays an
empty tmpfs over each `hide` folder, mounts each `reveal` folder back in place, and starts the
program as `uid`/`gid` with no way to gain privileges (no_new_privs). The shim itself keeps its
rights, to write `exit.json`. A sandbox it cannot build fails the attempt (exit 126): a job never
runs unisolated by accident.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time

from llmos._exit import skip_collection_at_exit


def main(argv: list[str]) -> int:
    skip_collection_at_exit()  # see llmos._exit
    if argv[:1] == ["--probe"]:
        return _probe(argv[1])
    attempt_dir, cores, *rest = argv
    plan = json.loads(rest.pop(0)) if rest and rest[0] != "--" else None
    sep, *command = rest or [""]
    if sep != "--" or not command:
        print("usage: _shim.py ATTEMPT_DIR CORES [SANDBOX] -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cores.split(",")})
    try:
        options = _isolate(plan) if plan else {}
    except OSError as exc:
        print(f"error: cannot isolate the job from the control plane: {exc}", file=sys.stderr, flush=True)
        _record(attempt_dir, 126)
        return 126
    try:
        child = subprocess.Popen(command, **options)
    except OSError as exc:
        print(f"error: cannot start {command[0]!r}: {exc}", file=sys.stderr, flush=True)
        _record(attempt_dir, 127)
        return 127

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = child.wait()
    _record(attempt_dir, code)
    return code if code >= 0 else 128 - code


_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38


def _isolate(plan: dict) -> dict:
    """Build the job's view of the file system in namespaces of this process's own; returns what
    Popen needs to start the program inside it as the job's user."""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    own_user = plan["uid"] is None  # no root: a user namespace gives the right to mount
    # Without root the job runs as the daemon's user, so it also gets a PID namespace: it cannot
    # reach the daemon's files through /proc/PID/root. As another user it cannot anyway.
    flags = _CLONE_NEWNS | ((_CLONE_NEWUSER | _CLONE_NEWPID) if own_user else 0)
    _check(libc.unshare(flags), "unshare")
    if own_user:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing done here leaks to the host
    hides, reveals = plan["hide"], plan["reveal"]
    # Opened before any tmpfs covers them: the folders to mount back, by descriptor.
    fds = {r: os.open(r, os.O_PATH | os.O_DIRECTORY) for r in reveals}
    os.umask(0o022)  # the folders made in a tmpfs on the way to a revealed one: crossable by the job
    for hide in hides:
        _mount(libc, "tmpfs", hide, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=1m")
        for path in reveals:
            if _innermost(path, hides) == hide:
                os.makedirs(path, exist_ok=True)
                _mount(libc, f"/proc/self/fd/{fds[path]}", path, None, _MS_BIND | _MS_REC)
    for fd in fds.values():
        os.close(fd)
    new_proc = bool(flags & _CLONE_NEWPID)

    def in_child() -> None:
        if new_proc:  # the program is PID 1 of a namespace of its own: a /proc that shows only it
            _mount(libc, "proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")
        # Killed with the shim: whoever stops an isolated process by the shim's pid stops it too.
        _check(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")

    # cwd again by its path, now resolved in the new view: a folder the shim stood in must not be a
    # way around a tmpfs laid over one of its parents.
    options: dict = {"preexec_fn": in_child, "umask": plan.get("umask", 0o007), "cwd": os.getcwd()}
    if not own_user:
        options.update(user=plan["uid"], group=plan["gid"], extra_groups=list(plan["groups"]))
    if plan.get("extra"):
        options["env"] = {**os.environ, **plan["extra"]}
    return options


def _probe(mode: str) -> int:
    """Exit 0 if a sandbox of `mode` (users: as root; sandbox: in a user namespace) can be built here."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="llmos-probe-")
    try:
        if mode == "users" and os.geteuid() != 0:
            return 1
        plan = {"uid": 0 if mode == "users" else None, "gid": 0, "groups": [], "hide": [folder], "reveal": []}
        _isolate(plan)
        return 0
    except OSError as exc:
        print(f"{mode}: {exc}", file=sys.stderr)
        return 1
    finally:
        ctypes.CDLL(None).umount2(folder.encode(), 2)  # MNT_DETACH: the tmpfs, in this process's namespace
        os.rmdir(folder)


def _innermost(path: str, hides: list[str]) -> str | None:
    holders = [h for h in hides if path.startswith(h.rstrip("/") + "/")]
    return max(holders, key=len) if holders else None


def _mount(libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    enc = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    _check(libc.mount(enc[0], enc[1], enc[2], flags, enc[3]), f"mount {target}")


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _record(attempt_dir: str, code: int) -> None:
    record_exit(os.path.join(attempt_dir, "exit.json"), code)


def record_exit(path: str, code: int) -> None:
    """Write `{"exit_code", "ended_s"}` to `path`, atomically (llmos.executor._base.exit_record reads it)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    # The folder may be an isolated job's: a new file, never through a link it left there.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        json.dump({"exit_code": code, "ended_s": time.time()}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
