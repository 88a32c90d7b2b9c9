"""How this control plane keeps jobs away from its state, decided once at start (docs/security.md).

    users     the daemon is root: each project's jobs run as its own OS user in a mount namespace
              that hides LLMOS_HOME/control (tokens, database, configuration, keys)
    sandbox   the daemon is not root: jobs run in user, mount and PID namespaces that hide it
    none      neither works here (or jobs run on Ray): the daemon says so and makes admin tokens only
    trusted   chosen by an admin (`isolation: trusted`): jobs run as the daemon's user, for a
              machine whose every token holder may read the control plane's state

`auto` (the default) picks the first of users, sandbox that works here, else none.
`LLMOS_ISOLATION` overrides the configuration (tests force each path through it).
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import subprocess
import sys
from pathlib import Path

from llmos.control._errors import Forbidden
from llmos.errors import LlmosError

__all__ = ["MODES", "choose", "describe", "prepare_home", "resolve", "token_refusal"]

MODES = ("auto", "users", "sandbox", "none", "trusted")
_SHIM = Path(__file__).parents[1] / "executor" / "_shim.py"


def choose(requested: str, is_root: bool, works: dict[str, bool], cluster: bool = False) -> str:
    """The isolation to run with: `requested` if it is a fixed one, else the best that `works`. On a
    Ray cluster llmos isolates nothing yet (workers run as the Ray node's user): `none`."""
    if requested != "auto":
        return requested
    if cluster:
        return "none"
    if is_root:  # root in a user namespace keeps its capabilities there: it could lift the sandbox
        return "users" if works.get("users") else "none"
    return "sandbox" if works.get("sandbox") else "none"


def resolve(configured: str, cluster: bool = False) -> str:
    """Decide the mode on this machine now; raises LlmosError when a mode asked for does not work."""
    requested = os.environ.get("LLMOS_ISOLATION") or configured
    if requested not in MODES:
        raise LlmosError(f"isolation {requested!r} is not one of {', '.join(MODES)}.",
                         hint="Fix LLMOS_ISOLATION or `isolation:` in control.yaml.")
    if cluster:
        if requested in ("users", "sandbox"):
            raise LlmosError(f"isolation {requested!r} covers jobs on this machine only; on a Ray cluster workers "
                             "run as the Ray node's user.",
                             hint="Use isolation: auto (none: admin tokens only) or trusted, and keep untrusted "
                                  "teams on Ray clusters of their own (docs/security.md).")
        return choose(requested, os.geteuid() == 0, {}, cluster=True)
    is_root = os.geteuid() == 0
    wanted = [requested] if requested in ("users", "sandbox") else ["users", "sandbox"] if requested == "auto" else []
    works = {m: _probe(m) for m in wanted if (m == "users") == is_root}
    if requested in ("users", "sandbox") and not works.get(requested):
        why = ("the daemon is not root" if requested == "users" and not is_root else
               "a root daemon isolates with users: as root in a user namespace a job could undo the sandbox"
               if is_root else "namespaces are not allowed here")
        raise LlmosError(f"isolation {requested!r} does not work on this machine ({why}).",
                         hint="Use isolation: auto to take what works; `users` needs a root daemon, `sandbox` "
                              "user namespaces (sysctl kernel.unprivileged_userns_clone=1).")
    return choose(requested, is_root, works)


def _probe(mode: str) -> bool:
    """Whether the shim can build a sandbox of this kind here (a real try, in a throwaway process)."""
    try:
        done = subprocess.run([sys.executable, str(_SHIM), "--probe", mode], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def describe(mode: str) -> str:
    """One line for the daemon's log and `llmos status`."""
    return {
        "users": "jobs isolated: each project's jobs run as its own user (llmos-PROJECT), control folder hidden",
        "sandbox": "jobs isolated: user, mount and PID namespaces hide the control folder",
        "none": "WARNING: jobs cannot be isolated from the control plane here (neither root nor user namespaces, "
                "or Ray workers); only admin tokens can be made",
        "trusted": "WARNING: isolation is off (isolation: trusted): jobs run as the daemon's user and can read "
                   "its tokens and database",
    }[mode]


def token_refusal(mode: str, role: str) -> Forbidden | None:
    """Why a token of `role` may not be made under `mode`, or None."""
    if mode != "none" or role == "admin":
        return None
    return Forbidden(f"this control plane cannot isolate jobs from its tokens and database, so it makes no "
                     f"{role} tokens: a {role}'s job could read the admin token.",
                     hint="Restart the daemon as root (jobs then run as per-project users) or where user namespaces "
                          "are allowed; or, if every token holder may read the control plane's state, set "
                          "`isolation: trusted` in LLMOS_HOME/control.yaml.")


def prepare_home(home: Path, mode: str) -> None:
    """Fix the home's permissions (also of a home made by an older llmos): the home 0700 (0711 when
    jobs run as other users, so that they reach their own folders in it), control/ 0700 and its
    files 0600, control.yaml 0600; with `users`, the shared tracking store and model cache open to
    the group llmos-jobs (docs/security.md)."""
    home.chmod(0o711 if mode == "users" else 0o700)
    control = home / "control"
    control.mkdir(mode=0o700, exist_ok=True)
    for path in [control, *control.iterdir()]:
        if path.is_symlink():
            continue
        path.chmod((path.stat().st_mode & ~0o7777) | (0o700 if path.is_dir() else 0o600))
    if (home / "control.yaml").is_file():
        (home / "control.yaml").chmod(0o600)
    if mode == "users":
        _open_shared(home)


def _open_shared(home: Path) -> None:
    from llmos.executor._jobuser import ensure_group

    gid = ensure_group()
    for name in ("runs", "projects"):  # folders per job and per project, made by the daemon
        (home / name).mkdir(exist_ok=True)
        os.chown(home / name, 0, 0)
        (home / name).chmod(0o711)
    for name in ("tracking", "mlartifacts", "models", "cache"):  # shared by every job (see docs)
        _group_tree(home / name, gid)
    # The SQLite tracking store lives in tracking/ (its journal is made beside it, where every job
    # user may write); LLMOS_HOME/mlflow.db stays its name, a link.
    db, moved = home / "mlflow.db", home / "tracking" / "mlflow.db"
    if db.is_file() and not db.is_symlink():
        for suffix in ("", "-journal", "-wal", "-shm"):
            if Path(f"{db}{suffix}").exists():
                os.replace(f"{db}{suffix}", f"{moved}{suffix}")
    if not moved.exists():
        moved.touch(mode=0o660)
    os.chown(moved, 0, gid)
    moved.chmod(0o660)
    if not db.is_symlink():
        db.symlink_to("tracking/mlflow.db")


# A default ACL u::rwx g::rwx o::--- (the kernel's binary form): what anyone makes in a shared
# folder is the group's too, whatever its umask (the daemon's 077, a job's 007).
_SHARED_ACL = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, 0xFFFFFFFF)
                                              for tag, perm in ((0x01, 7), (0x04, 7), (0x20, 0)))


def _group_tree(folder: Path, gid: int) -> None:
    """`folder` and all below it: group `gid`, group read-write, folders set-group-id with a default
    ACL that keeps new entries group read-write."""
    folder.mkdir(exist_ok=True)
    for root, dirs, files in os.walk(folder):
        with contextlib.suppress(OSError):  # a file system without ACLs: the umasks decide
            os.setxattr(root, "system.posix_acl_default", _SHARED_ACL)
        for path in [root, *(os.path.join(root, f) for f in files)]:
            if os.path.islink(path):
                continue
            os.chown(path, -1, gid)
            mode = os.stat(path).st_mode
            extra = (stat.S_ISGID | 0o070) if stat.S_ISDIR(mode) else 0o060
            os.chmod(path, (mode & 0o7777 & ~0o007) | extra)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
