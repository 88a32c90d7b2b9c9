"""The folders an admin lets a project's spec paths name beside its own (`llmos roots add P PATH`): stored
resolved, never `/` or a relative path; listed together with the project's default folders."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmos.control._confine import default_roots
from llmos.control._errors import Conflict, NotFound, Rejected

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from llmos.control._auth import Caller

__all__ = ["add_root", "list_roots", "remove_root"]

_MAX_ROOT_CHARS = 1024


def list_roots(conn: Connection, project: str | None = None) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from llmos.control._schema import project_roots

    query = select(project_roots).order_by(project_roots.c.project, project_roots.c.path)
    if project is not None:
        query = query.where(project_roots.c.project == project)
    rows = [{**dict(r._mapping), "default": False} for r in conn.execute(query)]
    if project is not None:
        rows = [{"project": project, "path": str(p), "added_s": None, "added_by": "llmos", "default": True}
                for p in default_roots(project)] + rows
    return rows


def add_root(conn: Connection, caller: Caller, project: str, path: str, now_s: float | None = None) -> dict:
    from sqlalchemy import insert, select

    from llmos.control._schema import project_roots

    folder = _checked_root(path)
    exists = conn.execute(select(project_roots.c.path).where(project_roots.c.project == project,
                                                            project_roots.c.path == folder)).first()
    if exists is not None:
        raise Conflict(f"project {project} may already use {folder}.",
                       hint=f"See its folders: llmos roots ls {project}")
    row = {"project": project, "path": folder, "added_s": now_s or time.time(), "added_by": caller.owner}
    conn.execute(insert(project_roots).values(**row))
    return {**row, "default": False}


def remove_root(conn: Connection, project: str, path: str) -> dict:
    from sqlalchemy import delete

    from llmos.control._schema import project_roots

    folder = os.path.realpath(os.path.expanduser(path)) if path.startswith(("/", "~")) and "\x00" not in path else path
    gone = conn.execute(delete(project_roots).where(project_roots.c.project == project,
                                                    project_roots.c.path.in_([path, folder]))).rowcount
    if not gone:
        raise NotFound(f"project {project} has no added root {path}.", hint=f"List them with: llmos roots ls {project}")
    return {"project": project, "path": folder, "removed": True}


def _checked_root(path: str) -> str:
    if "\x00" in path or len(path) > _MAX_ROOT_CHARS:
        raise Rejected("a root must be a folder path of at most 1024 characters, without NUL bytes.")
    p = Path(os.path.expanduser(path))
    if not p.is_absolute():
        raise Rejected(f"a root must be an absolute folder path, got {path!r}.",
                       hint="Give the full path, e.g. llmos roots add PROJECT /data/team-a")
    folder = os.path.realpath(p)
    if folder == "/":
        raise Rejected("the root folder / would let the project's jobs name every file on the machine.",
                       hint="Add the folder that holds the project's data instead.")
    return folder
