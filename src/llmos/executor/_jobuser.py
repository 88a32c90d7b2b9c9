"""The system side of job isolation: a project's OS user, its folders, and the sandbox of one attempt.

`users` (the daemon is root): each project's jobs run as `llmos-PROJECT` (made with useradd on the
first job of the project), a member of `llmos-jobs` only. Its folder `LLMOS_HOME/projects/PROJECT`
(its HOME) and each of its run and attempt folders are its own, mode 0700, so that no other
project's job can read them. `sandbox` (not root): the daemon's user in user, mount and PID
namespaces; other projects' folders are hidden instead. See `_sandbox.py` for the decisions.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from llmos.errors import LlmosError
from llmos.executor._sandbox import JOB_GROUP, Sandbox, project_user, view

__all__ = ["attempt_sandbox", "ensure_group", "ensure_user", "give", "reclaim"]


def ensure_user(project: str) -> tuple[int, int, int]:
    """(uid, gid, gid of `llmos-jobs`) of the project's job user, made if missing: a system user with
    no login, a group of its own (what it writes is not its neighbours'), and `llmos-jobs` (the
    shared tracking store and model cache)."""
    import pwd

    name = project_user(project)
    shared = ensure_group()
    _make_once(pwd.getpwnam, name, ["useradd", "--system", "--user-group", "--groups", JOB_GROUP,
                                    "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                                    "/usr/sbin/nologin", "--comment", f"llmos jobs of project {project}"[:60], name])
    user = pwd.getpwnam(name)
    return user.pw_uid, user.pw_gid, shared


def ensure_group() -> int:
    """The gid of `llmos-jobs`, made if missing."""
    import grp

    _make_once(grp.getgrnam, JOB_GROUP, ["groupadd", "--system", JOB_GROUP])
    return grp.getgrnam(JOB_GROUP).gr_gid


def give(path: Path, uid: int, gid: int, *, tree: bool = True) -> None:
    """Make `path` (and with `tree` everything under it) the job user's, the top folder 0700.
    Symbolic links are changed themselves, never followed: a job cannot make the daemon take over
    another file by leaving a link in its run folder."""
    os.lchown(path, uid, gid)
    os.chmod(path, 0o700)
    for root, dirs, files in os.walk(path) if tree else ():
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def reclaim(run_dir: Path, project: str) -> None:
    """Take a job's run folder back before the daemon writes into it (the job file, run.json):
    root's and 0700, so that no job races it, and without the links or many-linked files at its
    top a job may have left to turn the daemon's writes onto another file. `attempt_sandbox` gives
    it back."""
    run = run_dir.expanduser().resolve()
    if not _given(run, project) or not run.is_dir() or run.stat().st_uid == os.geteuid():
        return
    os.chown(run, os.geteuid(), os.getegid())
    os.chmod(run, 0o700)
    for entry in os.scandir(run):
        st = entry.stat(follow_symlinks=False)
        if entry.is_symlink() or (not entry.is_dir(follow_symlinks=False) and st.st_nlink > 1):
            os.unlink(entry.path)


def attempt_sandbox(mode: str, project: str, attempt: Path, run_dir: Path | None) -> Sandbox:
    """The sandbox of one attempt of `project`'s job; makes the project's user and folders. A run
    folder outside the home's `runs/`, the project's folder or the cluster storage is used as it
    is (never taken over: the job writes there only if its user may)."""
    from llmos.paths import home, project_dir

    control, own = home() / "control", project_dir(project)
    run = run_dir.resolve() if run_dir is not None else None
    owned = run is not None and _given(run, project)
    # Nothing under the control folder is ever shown but the attempt's own folder.
    own.mkdir(parents=True, exist_ok=True)
    if owned and run is not None:
        run.mkdir(parents=True, exist_ok=True)
    needed = [p for p in [own, home(), Path(sys.prefix), Path(sys.base_prefix), Path(__file__).parents[2], run]
              if p is not None and p.is_dir() and not p.is_relative_to(control)] + [attempt]
    # LLMOS_WARM_START: what the job itself runs in the foreground (a sweep's trials, a pipeline's
    # stages) starts as new processes: a fork server (llmos._forkserver) would outlive the job.
    extra = {"HOME": str(own), "USER": project_user(project), "LOGNAME": project_user(project),
             "LLMOS_PROJECT": project, "LLMOS_RUNS": str(own / "runs"), "LLMOS_WARM_START": "off"}
    if mode == "users":
        uid, gid, shared = ensure_user(project)
        give(own, uid, gid, tree=False)
        give(attempt, uid, gid)
        if owned and run is not None:
            give(run, uid, gid)
        sandbox_ids: tuple[int | None, int | None, tuple[int, ...]] = (uid, gid, (shared,))
        hidden = [control]
    else:  # the daemon's own user: what permissions cannot keep apart is hidden
        sandbox_ids = (None, None, ())
        hidden = [control, home() / "projects", home() / "runs"]
    # Under `sandbox` the job is the daemon's user: it crosses every folder the daemon can.
    hide, reveal = view([str(h) for h in hidden], [str(p) for p in needed],
                        _mode if mode == "users" else lambda _: 0o755)
    return Sandbox(*sandbox_ids, hide, reveal, extra=extra)


def _given(run: Path, project: str) -> bool:
    """Whether a run folder is one the daemon gives to the job's user: under the home's runs/, the
    project's folder or the cluster storage (never an admin root or another user's folder)."""
    from llmos.paths import home, project_dir, storage

    ours = [home() / "runs", project_dir(project), *([storage()] if storage() else [])]
    return any(run.is_relative_to(r) and run != r for r in ours)


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:  # not there yet: made by the job, under a folder that was checked
        return 0o755


# Every llmos process on this machine makes accounts under this lock: two useradd runs at once can
# both read /etc/passwd before either writes it, and the second then drops the first's user (seen
# here: one name, two uids, one of them lost).
_ACCOUNTS_LOCK = Path("/run/lock/llmos-accounts.lock")


@contextlib.contextmanager
def _accounts_lock() -> Iterator[None]:
    folder = _ACCOUNTS_LOCK.parent if _ACCOUNTS_LOCK.parent.is_dir() else Path("/tmp")
    fd = os.open(folder / _ACCOUNTS_LOCK.name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# useradd/groupadd exit codes: another process holds /etc/passwd's lock (10); the name was taken
# meanwhile (9). Both happen when another daemon on this machine makes its accounts at the same time.
_PASSWD_BUSY, _NAME_TAKEN = 10, 9


def _make_once(lookup: Callable[[str], object], name: str, argv: list[str]) -> None:
    """Make account `name` with `argv` unless `lookup` finds it, under the accounts lock, looking again
    once it is held (another daemon may have made it while this one waited)."""
    if _exists(lookup, name):
        return
    with _accounts_lock():
        if not _exists(lookup, name):
            _run(argv, made=lambda: _exists(lookup, name))


def _exists(lookup: Callable[[str], object], name: str) -> bool:
    try:
        lookup(name)
        return True
    except KeyError:
        return False


def _run(argv: list[str], made: Callable[[], bool] = lambda: False, attempts: int = 20) -> None:
    """Run an account command. `made()` says whether what it makes exists (made by another process
    since we looked): then a 'name taken' failure is success. A busy passwd lock is waited out."""
    try:
        for attempt in range(attempts):
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode == 0 or (done.returncode == _NAME_TAKEN and made()):
                return
            if done.returncode != _PASSWD_BUSY or attempt == attempts - 1:
                raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
            time.sleep(0.1 + 0.05 * attempt)
    except FileNotFoundError:
        raise LlmosError(f"cannot make the user jobs run as: {argv[0]} is not installed.",
                         hint="Install the passwd package (apt-get install passwd), or run the daemon as "
                              "a user other than root (jobs then run in a sandbox).") from None
    except subprocess.CalledProcessError as exc:
        raise LlmosError(f"cannot make the user jobs run as ({' '.join(argv)}): {exc.stderr.strip()}",
                         hint="Create it by hand, or run the daemon as a user other than root.") from None
