"""Managing projects: create, list, show, members, priority grants, quotas; and listing users.

A global admin does everything here; a project's admin manages its members; any member sees
its project. Every change, and every refused call, leaves an audit row (`auth.record`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update

from llmos.control import _auth as auth
from llmos.control import _projects as rules
from llmos.control._db import read, write
from llmos.control._errors import Conflict, NotFound, Rejected
from llmos.control._schema import jobs, members, projects, tokens, users
from llmos.scheduler import PRIORITY_CLASSES

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["QUOTA_FIELDS", "Projects"]

QUOTA_FIELDS = ("weight", *(f"{k}_{r}" for k in ("guarantee", "cap") for r in ("cpus", "memory_gb", "gpus")))
_GRANTABLE = ("normal", "high", "critical")  # `normal` takes a grant back


Audited = Callable[[auth.Caller, str, str], AbstractContextManager[dict]]


class Projects:
    def __init__(self, engine: Engine, audited: Audited) -> None:
        self.engine = engine
        self._audited = audited  # Service._audited: a refused call is audited in its own transaction

    def list(self, caller: auth.Caller) -> list[dict]:
        """Projects the caller is a member of (an admin: all), with its role, grant and quota."""
        with read(self.engine) as conn:
            query = select(projects).order_by(projects.c.name)
            if not caller.is_admin:
                query = query.where(projects.c.name.in_(
                    select(members.c.project).where(members.c.username == caller.owner)))
            return [self._view(conn, row, caller) for row in conn.execute(query).all()]

    def show(self, caller: auth.Caller, name: str) -> dict:
        with read(self.engine) as conn:
            rules.authorize(conn, caller, name, "viewer", "see the project")
            row = self._row(conn, name)
            view = self._view(conn, row, caller)
            view["members"] = [{"user": m.username, "role": m.role} for m in conn.execute(
                select(members).where(members.c.project == name).order_by(members.c.username))]
            view["queued_or_running"] = conn.execute(select(func.count()).select_from(jobs).where(
                jobs.c.project == name, jobs.c.state.in_(["QUEUED", "STARTING", "RUNNING"]))).scalar_one()
        return view

    def create(self, caller: auth.Caller, name: str) -> dict:
        with self._change(caller, "projects.create", name, "create projects") as conn:
            if not rules.ensure_project(conn, name):
                raise Conflict(f"project {name} already exists.", hint=f"See it with: llmos projects show {name}")
            auth.record(conn, caller, "projects.create", f"project {name}")
        return self.show(caller, name)

    def add_member(self, caller: auth.Caller, name: str, user: str, role: str) -> dict:
        with self._change(caller, "projects.add_member", name, "manage its members", project_admin=True) as conn:
            if conn.execute(select(users.c.name).where(users.c.name == user)).first() is None:
                # 422, not 404: the project (the resource addressed) exists; the body names no known user.
                raise Rejected(f"user: no user {user}.", hint=f"A user is made with its first token: llmos tokens "
                                                             f"create --owner {user} --role developer --name NAME")
            rules.set_member(conn, name, user, role)
            auth.record(conn, caller, "projects.add_member", f"project {name}", detail=f"{user} as {role}")
        return self.show(caller, name)

    def remove_member(self, caller: auth.Caller, name: str, user: str) -> dict:
        with self._change(caller, "projects.rm_member", name, "manage its members", project_admin=True) as conn:
            gone = conn.execute(delete(members).where(members.c.project == name, members.c.username == user))
            if gone.rowcount == 0:
                raise NotFound(f"{user} is not a member of project {name}.",
                               hint=f"See its members with: llmos projects show {name}")
            auth.record(conn, caller, "projects.rm_member", f"project {name}", detail=user)
        return self.show(caller, name)

    def grant(self, caller: auth.Caller, name: str, priority: str) -> dict:
        with self._change(caller, "projects.grant", name, "grant priority classes") as conn:
            if priority not in _GRANTABLE:
                raise Rejected(f"cannot grant priority class {priority!r}.",
                               hint=f"Grant one of: {', '.join(_GRANTABLE)} (normal takes a grant back).")
            conn.execute(update(projects).where(projects.c.name == name)
                         .values(max_priority=PRIORITY_CLASSES[priority]))
            auth.record(conn, caller, "projects.grant", f"project {name}", detail=f"up to {priority}")
        return self.show(caller, name)

    def set_quota(self, caller: auth.Caller, name: str, values: dict[str, float | None], clear: bool = False) -> dict:
        with self._change(caller, "projects.quota", name, "set quotas") as conn:
            _check_quota(values)
            fields: dict[str, float | None] = {"weight": 1.0, **dict.fromkeys(QUOTA_FIELDS[1:])} if clear else {}
            fields.update(values)
            if fields:
                conn.execute(update(projects).where(projects.c.name == name).values(**fields))
            auth.record(conn, caller, "projects.quota", f"project {name}",
                        detail=", ".join(f"{k}={v}" for k, v in fields.items()))
        return self.show(caller, name)

    def users(self, caller: auth.Caller) -> list[dict]:
        with self._audited(caller, "users.list", "users"):
            auth.require(caller, "admin", "list users")
        with read(self.engine) as conn:
            roles: dict[str, list[dict]] = {}
            for m in conn.execute(select(members).order_by(members.c.project)):
                roles.setdefault(m.username, []).append({"project": m.project, "role": m.role})
            active = dict(conn.execute(select(tokens.c.owner, func.count()).where(tokens.c.revoked_s.is_(None))
                                       .group_by(tokens.c.owner)).all())
            return [{"name": u.name, "default_project": u.default_project, "created_s": u.created_s,
                     "projects": roles.get(u.name, []), "tokens": active.get(u.name, 0)}
                    for u in conn.execute(select(users).order_by(users.c.name))]

    # ---- helpers ---------------------------------------------------------------------------------
    @contextmanager
    def _change(self, caller: auth.Caller, action: str, name: str, what: str,
                project_admin: bool = False) -> Iterator[Connection]:
        """A write transaction for `action` on project `name` by a global admin (or, with
        `project_admin`, an admin of that project), audited when refused."""
        with self._audited(caller, action, f"project {name}") as note:
            if not project_admin:
                auth.require(caller, "admin", what)
            with write(self.engine) as conn:
                if action != "projects.create":
                    self._row(conn, name)
                    rules.authorize(conn, caller, name, "admin", what)
                yield conn
            note["audited"] = True

    @staticmethod
    def _row(conn: Connection, name: str) -> Any:
        row = conn.execute(select(projects).where(projects.c.name == name)).first()
        if row is None:
            raise NotFound(f"no project {name}.", hint="List them with: llmos projects ls")
        return row

    @staticmethod
    def _view(conn: Connection, row: Any, caller: auth.Caller) -> dict:
        role = rules.effective_role(caller.role, rules.member_role(conn, row.name, caller.owner))
        quota = {k: getattr(row, k) for k in QUOTA_FIELDS}
        return {"name": row.name, "created_s": row.created_s, "your_role": role,
                "priority_granted": rules.CLASS_NAMES[max(row.max_priority, rules.NORMAL)], **quota}


def _check_quota(values: dict[str, float | None]) -> None:
    problems = [(k, "unknown quota field") for k in values if k not in QUOTA_FIELDS]
    problems += [(k, f"must be >= 0, got {v}") for k, v in values.items() if v is not None and v < 0]
    if "weight" in values and (values["weight"] is None or values["weight"] <= 0):
        problems.append(("weight", f"must be > 0, got {values['weight']}"))
    if problems:
        raise Rejected("bad quota:", problems=problems, hint="Give CPUs, GPUs and GB as numbers >= 0.")
