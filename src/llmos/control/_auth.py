"""API tokens, roles and the audit log.

A token is shown once, when it is made; the store keeps only its sha256 and its first characters
(so that its holder can tell it apart in `llmos tokens ls`). A token acts as a user (its owner);
roles are ordered: viewers read, developers also submit and cancel their own jobs, admins do
everything, in every project. Within a project the user's membership decides what a developer
token may do, and a viewer token only reads (`_projects`). A revoked token keeps its
row, marked revoked, and is refused from then on; the last admin token cannot be revoked. Every
state-changing call, allowed or not, is appended to `audit` (who, what, when, from where).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, insert, or_, select, update

from llmos.control._errors import Conflict, ControlError, Forbidden, NotFound, Rejected, Unauthorized
from llmos.control._schema import tokens

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["ROLES", "Caller", "TokenState", "create_token", "ensure_admin_token", "list_tokens", "record", "require",
           "revocation_error", "revoke_token", "touch", "verify"]

ROLES = ("viewer", "developer", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}
_PREFIX_CHARS = 12  # "llmos_" and 6 of its 43 random characters: enough to tell tokens apart
_LISTED = ("id", "name", "owner", "role", "prefix", "created_s", "last_used_s", "revoked_s")


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
    _store(conn, token, name=name, owner=owner, role=role, now_s=now_s)
    return token


def _store(conn: Connection, token: str, *, name: str, owner: str, role: str, now_s: float | None = None) -> None:
    from llmos.control._projects import ensure_user

    ensure_user(conn, owner, role, now_s)  # the owner is a user, with a project of its own
    conn.execute(insert(tokens).values(name=name, owner=owner, role=role, digest=digest(token),
                                       prefix=token[:_PREFIX_CHARS], created_s=now_s or time.time()))


def verify(conn: Connection, token: str | None, source: str) -> Caller:
    if not token:
        raise Unauthorized("this API needs a token: send `Authorization: Bearer TOKEN`.",
                           hint="The admin token is in LLMOS_HOME/control/admin.token; make others with "
                                "llmos tokens create --role viewer|developer|admin")
    row = conn.execute(select(tokens.c.id, tokens.c.owner, tokens.c.role, tokens.c.revoked_s)
                       .where(tokens.c.digest == digest(token))).first()
    if row is None:
        raise Unauthorized("the token is not known to this control plane.",
                           hint="Use the token from LLMOS_HOME/control/admin.token or one made by "
                                "llmos tokens create.")
    if row.revoked_s is not None:
        raise Unauthorized(f"this token (id {row.id}, {row.role} of {row.owner}) was revoked "
                           f"at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(row.revoked_s))}.",
                           hint="Ask an admin for a new one (llmos tokens create ...).")
    return Caller(row.owner, row.role, source)


def touch(conn: Connection, token_digest: str, now_s: float) -> None:
    """Record that a token was just used (`last_used_s`)."""
    conn.execute(update(tokens).where(tokens.c.digest == token_digest).values(last_used_s=now_s))


def list_tokens(conn: Connection, include_revoked: bool = False) -> list[dict[str, Any]]:
    """Every token's id, name, owner, role, prefix and times, oldest first; never a secret or a digest."""
    query = select(*(getattr(tokens.c, c) for c in _LISTED)).order_by(tokens.c.id)
    if not include_revoked:
        query = query.where(tokens.c.revoked_s.is_(None))
    return [dict(r._mapping) for r in conn.execute(query)]


@dataclass(frozen=True)
class TokenState:
    id: int
    role: str
    revoked: bool


def revocation_error(token_id: int, known: Sequence[TokenState]) -> ControlError | None:
    """Why token `token_id` may not be revoked, given the tokens `known` (it and every active admin)."""
    target = next((t for t in known if t.id == token_id), None)
    if target is None:
        return NotFound(f"no token {token_id}.", hint="List them with: llmos tokens ls")
    if target.revoked:
        return Conflict(f"token {token_id} is already revoked.", hint="List them with: llmos tokens ls --all")
    admins = [t for t in known if t.role == "admin" and not t.revoked]
    if target.role == "admin" and len(admins) == 1:
        return Conflict(f"token {token_id} is the last admin token; without it no one could manage tokens "
                        "or other people's jobs.",
                        hint="Make another admin token first (llmos tokens create --role admin --name NAME), "
                             f"then revoke this one: llmos tokens revoke {token_id}")
    return None


def revoke_token(conn: Connection, token_id: int, now_s: float) -> dict[str, Any]:
    """Mark a token revoked; returns its listing plus `digest` (for caches), or raises why it may not be."""
    # FOR UPDATE (PostgreSQL; SQLite's write transaction is already exclusive): two admins revoking
    # the last two admin tokens at once are serialised, and the second one sees a single admin left.
    rows = conn.execute(select(*(getattr(tokens.c, c) for c in _LISTED), tokens.c.digest)
                        .where(or_(tokens.c.id == token_id,
                                   and_(tokens.c.role == "admin", tokens.c.revoked_s.is_(None))))
                        .order_by(tokens.c.id).with_for_update()).all()
    error = revocation_error(token_id, [TokenState(r.id, r.role, r.revoked_s is not None) for r in rows])
    if error is not None:
        raise error
    conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_s=now_s))
    row = next(r for r in rows if r.id == token_id)
    return {**row._mapping, "revoked_s": now_s}


def require(caller: Caller, role: str, action: str) -> None:
    if _RANK[caller.role] < _RANK[role]:
        raise Forbidden(f"{caller.owner} ({caller.role}) may not {action}; that needs the {role} role.",
                        hint="Ask an admin for a token with that role (llmos tokens create --role ...).")


def record(conn: Connection, caller: Caller, action: str, target: str, outcome: str = "ok", detail: str = "",
           now_s: float | None = None, status: int = 200, project: str = "") -> None:
    """Append a row to the hash-chained audit log (`llmos.control._audit`) in `conn`'s transaction."""
    from llmos.control._audit import Entry, append

    append(conn, Entry(actor=caller.owner, role=caller.role, action=action, target=target, source=caller.source,
                       outcome=outcome, status=status, project=project or getattr(caller, "project", "") or "",
                       detail=detail), now_s=now_s)


def ensure_admin_token(engine: Engine, path: Path) -> None:
    """Make the admin token file (mode 0600) on first start; re-register it in a new database; replace
    it with a new admin token if it was revoked (so revoking it and restarting rotates it)."""
    from llmos.control._db import write

    if path.is_file():
        token = path.read_text().strip()
        with write(engine) as conn:
            row = conn.execute(select(tokens.c.revoked_s).where(tokens.c.digest == digest(token))).first()
            if row is None:
                _store(conn, token, name="admin", owner="admin", role="admin")
            elif row.revoked_s is not None:  # revoked (it leaked?): the file gets a new one
                _write_private(path, create_token(conn, name="admin", owner="admin", role="admin"))
        os.chmod(path, 0o600)
        return
    with write(engine) as conn:
        _write_private(path, create_token(conn, name="admin", owner="admin", role="admin"))


def _write_private(path: Path, token: str) -> None:
    # O_EXCL + 0600 at creation: the token is never readable by others, not even for an instant.
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
