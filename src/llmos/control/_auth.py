"""API tokens, roles and the audit log.

A token is shown once, when it is made; the store keeps only its sha256. Roles are ordered:
viewers read, developers also submit and cancel their own jobs, admins do everything. Every
state-changing call, allowed or not, is appended to `audit` (who, what, when, from where).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import insert, select

from llmos.control._errors import Forbidden, Rejected, Unauthorized
from llmos.control._schema import audit, tokens

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["ROLES", "Caller", "create_token", "ensure_admin_token", "record", "require", "verify"]

ROLES = ("viewer", "developer", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Caller:
    owner: str
    role: str
    source: str = "local"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: Connection, *, name: str, owner: str, role: str, now_s: float | None = None) -> str:
    """Store a new token's digest and return the token (the only time it is seen)."""
    if role not in _RANK:
        raise Rejected(f"unknown role {role!r}.", hint=f"Use one of: {', '.join(ROLES)}.")
    token = "llmos_" + secrets.token_urlsafe(32)
    conn.execute(insert(tokens).values(name=name, owner=owner, role=role, digest=digest(token),
                                       created_s=now_s or time.time()))
    return token


def verify(conn: Connection, token: str | None, source: str) -> Caller:
    if not token:
        raise Unauthorized("this API needs a token: send `Authorization: Bearer TOKEN`.",
                           hint="The admin token is in LLMOS_HOME/control/admin.token; make others with "
                                "llmos tokens create --role viewer|developer|admin")
    row = conn.execute(select(tokens.c.owner, tokens.c.role).where(tokens.c.digest == digest(token))).first()
    if row is None:
        raise Unauthorized("the token is not known to this control plane.",
                           hint="Use the token from LLMOS_HOME/control/admin.token or one made by "
                                "llmos tokens create.")
    return Caller(row.owner, row.role, source)


def require(caller: Caller, role: str, action: str) -> None:
    if _RANK[caller.role] < _RANK[role]:
        raise Forbidden(f"{caller.owner} ({caller.role}) may not {action}; that needs the {role} role.",
                        hint="Ask an admin for a token with that role (llmos tokens create --role ...).")


def record(conn: Connection, caller: Caller, action: str, target: str, outcome: str = "ok", detail: str = "",
           now_s: float | None = None) -> None:
    conn.execute(insert(audit).values(at_s=now_s or time.time(), actor=caller.owner, role=caller.role,
                                      action=action, target=target, source=caller.source, outcome=outcome,
                                      detail=detail[:2000]))


def ensure_admin_token(engine: Engine, path: Path) -> None:
    """Make the admin token file (mode 0600) on first start; re-register it in a new database."""
    from llmos.control._db import write

    if path.is_file():
        token = path.read_text().strip()
        with write(engine) as conn:
            if conn.execute(select(tokens.c.id).where(tokens.c.digest == digest(token))).first() is None:
                conn.execute(insert(tokens).values(name="admin", owner="admin", role="admin", digest=digest(token),
                                                   created_s=time.time()))
        os.chmod(path, 0o600)
        return
    with write(engine) as conn:
        token = create_token(conn, name="admin", owner="admin", role="admin")
        # O_EXCL + 0600 at creation: the token is never readable by others, not even for an instant.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
