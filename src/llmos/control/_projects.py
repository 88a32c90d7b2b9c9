"""Who may do what in which project: pure rules, and the reads and writes they need.

A token acts as a user; a user is a member of projects with a role there (viewer, developer,
admin). A developer token acts with the user's role in each project, a viewer token only reads
(even a project admin's), and a global admin token is admin in every project. Priority classes above `normal` are
granted per project by a global admin, and each project's quota (guarantee, cap, weight) is the
scheduler's `Owner` of the same name.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from llmos.control._auth import ROLES
from llmos.control._errors import Forbidden, NotFound, Rejected
from llmos.control._schema import members, projects, users
from llmos.scheduler import PRIORITY_CLASSES, Owner, Quota

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from llmos.control._auth import Caller

__all__ = ["CLASS_NAMES", "access_error", "authorize", "check_priority", "default_project", "effective_role",
           "ensure_project", "ensure_user", "granted_rank", "member_role", "owner_of", "owners", "priority_error",
           "readable_projects", "replica_class", "set_member"]

_RANK = {role: i for i, role in enumerate(ROLES)}
NORMAL = PRIORITY_CLASSES["normal"]
CLASS_NAMES = {rank: name for name, rank in PRIORITY_CLASSES.items()}


# ---- pure rules -----------------------------------------------------------------------------------
def effective_role(token_role: str, member_role: str | None) -> str | None:
    """The role a token has in a project: a global admin's everywhere; otherwise the user's role
    there (None: not a member), read-only through a viewer token."""
    if token_role == "admin":
        return "admin"
    if member_role is None:
        return None
    return "viewer" if token_role == "viewer" else member_role


def access_error(user: str, token_role: str, project: str, member_role: str | None, needs: str,
                 action: str) -> Forbidden | None:
    """Why `user` may not `action` in `project` (which needs the role `needs` there), or None."""
    role = effective_role(token_role, member_role)
    if role is not None and _RANK[role] >= _RANK[needs]:
        return None
    if role is None:
        return Forbidden(f"{user} is not a member of project {project}, so may not {action} there.",
                         hint=f"Ask an admin: llmos projects add-member {project} {user} --role {needs}")
    if token_role == "viewer" and member_role is not None and _RANK[member_role] >= _RANK[needs]:
        return Forbidden(f"this token is a {token_role} token; {action} in project {project} needs {needs}.",
                         hint=f"Use a {needs} token of {user} (llmos tokens create --role {needs} "
                              f"--owner {user} --name NAME).")
    return Forbidden(f"{user} is a {role} of project {project}; to {action} there needs the {needs} role.",
                     hint=f"Ask an admin: llmos projects add-member {project} {user} --role {needs}")


def priority_error(project: str, rank: int, granted: int, is_admin: bool) -> Forbidden | None:
    """Why a job of class `rank` may not go into `project` whose grant reaches `granted`, or None."""
    if rank <= max(granted, NORMAL) or is_admin:
        return None
    name = CLASS_NAMES[rank]
    return Forbidden(f"project {project} is not granted the {name} priority class (it may use up to "
                     f"{CLASS_NAMES[max(granted, NORMAL)]}).",
                     hint=f"Submit at normal, or ask an admin: llmos projects grant {project} --priority {name}")


def replica_class(is_admin: bool, granted: int | None) -> int:
    """The class a deployment's replicas wait for room at (and may preempt lower classes from): an
    admin's critical; otherwise the highest its project was granted, at most critical."""
    critical = PRIORITY_CLASSES["critical"]
    return critical if is_admin else min(critical, max(granted or NORMAL, NORMAL))


def owner_of(row: Any) -> Owner:
    """The scheduler's owner for a stored project row."""
    def quota(kind: str) -> Quota:
        return Quota(getattr(row, f"{kind}_cpus"), getattr(row, f"{kind}_memory_gb"), getattr(row, f"{kind}_gpus"))

    return Owner(row.name, weight=row.weight, guarantee=quota("guarantee"), cap=quota("cap"))


# ---- the store ------------------------------------------------------------------------------------
def owners(conn: Connection) -> list[Owner]:
    """Every project as the scheduler's `Owner` (weights, guarantees, caps)."""
    return [owner_of(r) for r in conn.execute(select(projects))]


def member_role(conn: Connection, project: str, user: str) -> str | None:
    return conn.execute(select(members.c.role).where(members.c.project == project,
                                                     members.c.username == user)).scalar()


def granted_rank(conn: Connection, project: str) -> int | None:
    """The highest class granted to `project`, None when there is no such project."""
    return conn.execute(select(projects.c.max_priority).where(projects.c.name == project)).scalar()


def default_project(conn: Connection, user: str) -> str:
    found = conn.execute(select(users.c.default_project).where(users.c.name == user)).scalar()
    return found or user


def readable_projects(conn: Connection, caller: Caller) -> set[str] | None:
    """The projects whose jobs, deployments and logs `caller` may read: those its user is a member
    of, in any role (None: all of them, for an admin token). Reads outside them answer as if the
    object did not exist, so that a list is filtered and a show is a 404."""
    if caller.is_admin:
        return None
    return set(conn.execute(select(members.c.project).where(members.c.username == caller.owner)).scalars())


def authorize(conn: Connection, caller: Caller, project: str, needs: str, action: str) -> None:
    """Raise 404 for an unknown project (to non-admins) or 403 unless the caller may `action` there."""
    if caller.is_admin:
        return
    if granted_rank(conn, project) is None:
        raise NotFound(f"no project {project}.", hint="See the projects you are in with: llmos projects ls")
    error = access_error(caller.owner, caller.role, project, member_role(conn, project, caller.owner), needs, action)
    if error is not None:
        raise error


def check_priority(conn: Connection, caller: Caller, project: str, rank: int) -> None:
    error = priority_error(project, rank, granted_rank(conn, project) or NORMAL, caller.is_admin)
    if error is not None:
        raise error


def ensure_project(conn: Connection, name: str, now_s: float | None = None) -> bool:
    """Create project `name` if it does not exist; True if it was made."""
    if granted_rank(conn, name) is not None:
        return False
    if not name or len(name) > 100:
        raise Rejected(f"project name {name!r} must be 1-100 characters.", hint="Pick a shorter name.")
    conn.execute(insert(projects).values(name=name, created_s=now_s or time.time(), max_priority=NORMAL, weight=1.0))
    return True


def set_member(conn: Connection, project: str, user: str, role: str) -> None:
    if role not in _RANK:
        raise Rejected(f"unknown role {role!r}.", hint=f"Use one of: {', '.join(ROLES)}.")
    if member_role(conn, project, user) is None:
        conn.execute(insert(members).values(project=project, username=user, role=role))
    else:
        conn.execute(update(members).where(members.c.project == project, members.c.username == user)
                     .values(role=role))


def ensure_user(conn: Connection, name: str, token_role: str, now_s: float | None = None) -> None:
    """Make `name` a user (on its first token) with a project of its own where it has the token's
    role; a later, higher token raises its role there. A project of that name made earlier (a
    team's) is not its own: it becomes its default project, but only an admin makes it a member."""
    now = now_s or time.time()
    if conn.execute(select(users.c.name).where(users.c.name == name)).first() is None:
        made = ensure_project(conn, name, now)
        conn.execute(insert(users).values(name=name, default_project=name, created_s=now))
        if made:
            set_member(conn, name, name, token_role)
        return
    current = member_role(conn, name, name)
    if current is not None and _RANK[token_role] > _RANK[current]:
        set_member(conn, name, name, token_role)
