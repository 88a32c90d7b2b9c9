"""Managing a project's secrets (its developers: set, ls, rm) and its extra path roots (admins add and
remove; its members list). Every change, and every refused call, leaves an audit row; a secret's
value is never in one, nor in any answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from llmos.control import _auth as auth
from llmos.control import _projects as rules
from llmos.control import _roots as folders
from llmos.control import _secrets as store
from llmos.control._db import read, write
from llmos.control._errors import NotFound

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["SecretAdmin"]

Audited = Callable[[auth.Caller, str, str], AbstractContextManager[dict]]


class SecretAdmin:
    def __init__(self, engine: Engine, audited: Audited) -> None:
        self.engine = engine
        self._audited = audited  # Service._audited: a refused call is audited in its own transaction

    # ---- secrets ---------------------------------------------------------------------------------
    def set(self, caller: auth.Caller, name: str, value: str, project: str | None = None) -> dict:
        with self._change(caller, "secrets.set", f"secret {name}", project, "developer", "set secrets") as (conn, p):
            made = store.set_secret(conn, p, name, value, caller.owner)
            auth.record(conn, caller, "secrets.set", f"secret {name}", project=p,
                        detail="created" if made["created"] else "replaced")
        return made

    def list(self, caller: auth.Caller, project: str | None = None) -> list[dict]:
        with read(self.engine) as conn:
            p = self._project(conn, caller, project)
            rules.authorize(conn, caller, p, "developer", "list secrets")
            return store.list_secrets(conn, p)

    def remove(self, caller: auth.Caller, name: str, project: str | None = None) -> dict:
        with self._change(caller, "secrets.rm", f"secret {name}", project, "developer", "remove secrets") as (conn, p):
            gone = store.remove_secret(conn, p, name)
            auth.record(conn, caller, "secrets.rm", f"secret {name}", project=p)
        return gone

    # ---- roots -----------------------------------------------------------------------------------
    def roots(self, caller: auth.Caller, project: str) -> list[dict]:
        with read(self.engine) as conn:
            rules.authorize(conn, caller, project, "viewer", "see its folders")
            return folders.list_roots(conn, project)

    def add_root(self, caller: auth.Caller, project: str, path: str) -> dict:
        with self._change(caller, "roots.add", f"project {project}", project, "admin", "add roots",
                          global_admin=True) as (conn, p):
            row = folders.add_root(conn, caller, p, path)
            auth.record(conn, caller, "roots.add", f"project {p}", project=p, detail=row["path"])
        return row

    def remove_root(self, caller: auth.Caller, project: str, path: str) -> dict:
        with self._change(caller, "roots.rm", f"project {project}", project, "admin", "remove roots",
                          global_admin=True) as (conn, p):
            row = folders.remove_root(conn, p, path)
            auth.record(conn, caller, "roots.rm", f"project {p}", project=p, detail=row["path"])
        return row

    # ---- helpers ---------------------------------------------------------------------------------
    @contextmanager
    def _change(self, caller: auth.Caller, action: str, target: str, project: str | None, needs: str, what: str,
                global_admin: bool = False) -> Iterator[tuple[Connection, str]]:
        with self._audited(caller, action, target) as note, write(self.engine) as conn:
            if global_admin:
                auth.require(caller, "admin", what)
            p = self._project(conn, caller, project)
            rules.authorize(conn, caller, p, needs, what)
            yield conn, p
            note["audited"] = True

    @staticmethod
    def _project(conn: Connection, caller: auth.Caller, project: str | None) -> str:
        # `-` (the CLI without --project): the caller's default project
        p = project if project not in (None, "", "-") else rules.default_project(conn, caller.owner)
        if rules.granted_rank(conn, p) is None:
            raise NotFound(f"no project {p}.", hint="See the projects with: llmos projects ls")
        return p
