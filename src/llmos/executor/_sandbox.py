"""What a job may see and who it runs as: the decisions behind job isolation (docs/security.md).

A job never runs with the control plane's rights. Under a root daemon (`users`) each project's
jobs run as a user of their own (`llmos-PROJECT`, in the group `llmos-jobs`) in a mount namespace
whose view of the file system hides the control plane's folder (tokens, database, configuration,
keys, other jobs' logs) and any folder its user could not cross anyway, with the few paths the
job needs (its attempt folder, its run folder, the Python it runs on) mounted back. Under an
unprivileged daemon (`sandbox`) the same view is built in a user namespace (and a PID namespace,
so that the job cannot read the daemon's files through /proc/PID/root).

The functions here are pure (a plan from paths and modes); `_shim.py` carries the plan out and
`_local.py` asks for it. The plan travels to the shim as JSON on its command line (it holds no
secret).
"""

from __future__ import annotations

import hashlib
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath

__all__ = ["JOB_GROUP", "Sandbox", "blocked_ancestor", "job_environ", "project_user", "view"]

JOB_GROUP = "llmos-jobs"  # every job user's group: the shared tracking store and model cache are its
_USER_CHARS = re.compile(r"[^a-z0-9-]+")
_MAX_USER = 32  # useradd's limit on a user name

# Never in a job's environment: what lets the holder act as the daemon or open its database.
_SECRET_NAMES = frozenset({"LLMOS_TOKEN", "LLMOS_ADDRESS", "LLMOS_DB", "LLMOS_DB_PASSWORD", "LLMOS_DB_PASSWORD_FILE",
                           "LLMOS_CA_CERT", "LLMOS_ISOLATION", "PGPASSWORD", "PGPASSFILE", "PGSERVICEFILE"})
_SECRET_SUFFIXES = ("_TOKEN", "_PASSWORD", "_SECRET", "_SECRET_KEY", "_API_KEY", "_PRIVATE_KEY")


@dataclass(frozen=True)
class Sandbox:
    """How the shim starts a job: as `uid`/`gid` (None: the daemon's own, in a user namespace),
    with `hide` folders covered by an empty tmpfs and `reveal` folders mounted back inside them."""

    uid: int | None
    gid: int | None
    groups: tuple[int, ...] = ()
    hide: tuple[str, ...] = ()
    reveal: tuple[str, ...] = ()
    umask: int = 0o007
    extra: dict[str, str] = field(default_factory=dict)  # environment the job gets (HOME, USER)

    def to_json(self) -> str:
        import json

        return json.dumps(asdict(self))


def project_user(project: str) -> str:
    """The OS user a project's jobs run as: `llmos-` and the project name made safe (lowercase,
    letters, digits, dashes); a name that had to change or be cut gets a hash so that two projects
    never share a user."""
    slug = _USER_CHARS.sub("-", project.lower()).strip("-") or "project"
    name = f"llmos-{slug}"
    if slug != project or len(name) > _MAX_USER:
        tag = hashlib.sha256(project.encode()).hexdigest()[:8]
        name = f"llmos-{slug[:_MAX_USER - 15]}-{tag}"
    return name


def job_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The daemon's environment less what a job must never hold: tokens, the database URL and
    passwords, anything named like a secret (a job's own secrets come from its spec)."""
    return {k: v for k, v in environ.items() if k not in _SECRET_NAMES and not k.upper().endswith(_SECRET_SUFFIXES)}


def blocked_ancestor(path: str, mode_of: Callable[[str], int]) -> str | None:
    """The outermost folder on the way to `path` that a stranger (another user, not in its group)
    cannot cross, or None. `mode_of` returns a folder's st_mode."""
    parts = PurePosixPath(path).parts
    for i in range(1, len(parts)):
        folder = str(PurePosixPath(*parts[:i]))
        if not mode_of(folder) & stat.S_IXOTH:
            return folder
    return None


def view(hidden: Iterable[str], needed: Iterable[str],
         mode_of: Callable[[str], int]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(hide, reveal) for a job that must not see `hidden` folders but must reach `needed` ones.
    A needed folder behind a folder a stranger cannot cross (`/root`, pytest's 0700 temp root) is
    revealed inside a tmpfs laid over that folder, whose other entries stay out of sight. Hide is
    ordered outermost first, as the shim mounts it; each revealed folder is mounted back after the
    innermost hidden folder that holds it."""
    hides = {str(PurePosixPath(h)) for h in hidden}
    paths = sorted({str(PurePosixPath(p)) for p in needed})
    for path in paths:
        blocked = blocked_ancestor(path, mode_of)
        if blocked is not None:
            hides.add(blocked)
    reveals = []
    for path in paths:
        inner = innermost(path, hides)
        if inner is None:
            continue  # in plain sight
        # Inside a folder already mounted back after the same hidden folder: visible through it.
        if not any(_under(path, r) and innermost(r, hides) == inner for r in reveals):
            reveals.append(path)
    return tuple(sorted(hides, key=lambda p: (p.count("/"), p))), tuple(reveals)


def innermost(path: str, hides: Iterable[str]) -> str | None:
    """The deepest hidden folder that holds `path` (strictly), or None."""
    holders = [h for h in hides if _under(path, h) and path != h]
    return max(holders, key=len) if holders else None


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")
