"""The audit log as a keyed hash chain: append, verify, query.

Each row stores `digest = HMAC-SHA256(key, prev_digest + its fields, id included)` and the
`prev_digest` it was made from. A row deleted, altered, moved or inserted directly in the database
breaks the chain at that row, and `verify` names it. The key lives in `LLMOS_HOME/control/audit.key`
(0600, made on first use) and never in the database: someone who can write the database but not
read the control folder cannot recompute the digests, as they could with a plain sha256 chain.

Appends are serialised so that two writers never fork the chain: on SQLite every write transaction
is already exclusive (`BEGIN IMMEDIATE`); on PostgreSQL an append takes a transaction-level
advisory lock. The id is the last id plus one, so a gap is itself evidence of a deleted row.

Rows written before the chain existed (a database upgraded from llmos 0.1.0) carry no digest; they
must all come before the first chained row, whose `prev_digest` covers them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, text

from llmos.control._audit_head import read_head, remember
from llmos.control._schema import audit

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row

__all__ = ["FIELDS", "Entry", "Verdict", "append", "check_chain", "key", "query", "seal_legacy", "verify"]

# The fields a digest covers, in this order; `id` is the first.
FIELDS = ("id", "at_s", "actor", "role", "project", "action", "target", "source", "outcome", "status", "detail")
_LIMITS = {"actor": 100, "role": 16, "project": 100, "action": 64, "target": 200, "source": 100, "outcome": 16,
           "detail": 2000}  # the columns' lengths: PostgreSQL refuses longer strings, so they are cut first
_LOCK_ID = 0x6C6C6D6F73A0D17  # "llmos" + "audit": the PostgreSQL advisory lock that serialises appends
_GENESIS = b"llmos audit chain v1"
CUT = "audit.cut"  # the action of the row an append writes when it finds the log's newest rows gone
_keys: dict[Path, bytes] = {}
_keys_lock = threading.Lock()


@dataclass(frozen=True)
class Entry:
    """What one audited call did; `status` is the HTTP status it was answered with."""

    actor: str
    role: str
    action: str
    target: str
    source: str
    outcome: str = "ok"
    status: int = 200
    project: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    """The result of a verification: `first_bad` is the id of the first row that breaks the chain."""

    ok: bool
    rows: int
    chained: int
    first_bad: int | None = None
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": self.rows, "chained": self.chained, "first_bad": self.first_bad,
                "problem": self.problem}


def key(path: Path | None = None) -> bytes:
    """The chain's key, made (32 random bytes, mode 0600, never readable by others) on first use."""
    from llmos.control._paths import control_dir

    path = path or control_dir() / "audit.key"
    with _keys_lock:
        if path not in _keys:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                _keys[path] = bytes.fromhex(path.read_text().strip())
            else:
                made = secrets.token_bytes(32)
                with os.fdopen(fd, "w") as f:
                    f.write(made.hex() + "\n")
                _keys[path] = made
        return _keys[path]


def _clean(value: str, limit: int) -> str:
    # A NUL byte cannot be stored in PostgreSQL text; write it visibly instead of failing the append.
    return value.replace("\x00", "\\x00")[:limit]


def _canonical(fields: dict[str, Any]) -> bytes:
    values = [fields[f] if f != "at_s" else repr(float(fields[f])) for f in FIELDS]
    return json.dumps(values, ensure_ascii=True, separators=(",", ":")).encode()


def mac(secret: bytes, prev_digest: str, fields: dict[str, Any]) -> str:
    return hmac.new(secret, prev_digest.encode() + b"\n" + _canonical(fields), hashlib.sha256).hexdigest()


def _seed(secret: bytes, legacy: Iterable[dict[str, Any]]) -> str:
    """The `prev_digest` of the first chained row: a MAC over the rows written before the chain."""
    h = hmac.new(secret, _GENESIS, hashlib.sha256)
    for row in legacy:
        h.update(b"\n" + json.dumps([str(row.get(f)) for f in FIELDS], separators=(",", ":")).encode())
    return h.hexdigest()


def _fields(row: Row) -> dict[str, Any]:
    return {f: getattr(row, f) for f in FIELDS}


def append(conn: Connection, entry: Entry, *, secret: bytes | None = None, now_s: float | None = None) -> int:
    """Add `entry` at the end of the chain (in the caller's transaction); returns its id."""
    secret = secret if secret is not None else key()
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
    last = conn.execute(select(audit.c.id, audit.c.digest).order_by(audit.c.id.desc()).limit(1)).first()
    if last is None:
        prev, next_id = _seed(secret, []), 1
    elif last.digest is None:  # the first append to a log from before the chain: seal those rows
        legacy = conn.execute(select(audit).order_by(audit.c.id)).all()
        prev, next_id = _seed(secret, (_fields(r) for r in legacy)), last.id + 1
    else:
        prev, next_id = last.digest, last.id + 1
    at_s = float(now_s or time.time())
    cut = tail_cut(conn, last.id if last is not None else 0, read_head(conn.engine))
    if cut is not None:  # written into the chain itself, so that appending on does not hide it
        prev = _insert(conn, secret, prev, next_id, at_s, Entry(
            actor="llmos", role="system", action=CUT, target=cut, source="local", outcome="tampered", status=0,
            detail="the newest rows appended before this one are no longer in the log (audit.head)"))
        next_id += 1
    digest = _insert(conn, secret, prev, next_id, at_s, entry)
    remember(conn, next_id, digest)  # the newest row, kept outside the database once this commits
    return next_id


def seal_legacy(conn: Connection, *, secret: bytes | None = None) -> int | None:
    """At start: if the newest row predates the chain (a database upgraded from llmos 0.1.0), append a
    row that seals every row before it, so that the log verifies from the first start on."""
    last = conn.execute(select(audit.c.id, audit.c.digest).order_by(audit.c.id.desc()).limit(1)).first()
    if last is None or last.digest is not None:
        return None
    return append(conn, Entry(actor="llmos", role="system", action="audit.seal", target=f"rows 1..{last.id}",
                              source="local", status=0,
                              detail="written before the hash chain (llmos 0.1.0); this row's digest covers them"),
                  secret=secret)


def _insert(conn: Connection, secret: bytes, prev: str, row_id: int, at_s: float, entry: Entry) -> str:
    fields: dict[str, Any] = {"id": row_id, "at_s": at_s, "status": int(entry.status)}
    for name in ("actor", "role", "project", "action", "target", "source", "outcome", "detail"):
        fields[name] = _clean(getattr(entry, name), _LIMITS[name])
    digest = mac(secret, prev, fields)
    conn.execute(insert(audit).values(**fields, prev_digest=prev, digest=digest))
    return digest


def tail_cut(conn: Connection, last_id: int, head: tuple[int, str] | None) -> str | None:
    """Which rows were cut from the end since the newest append this LLMOS_HOME saw, if any."""
    if head is None:
        return None
    head_id, head_digest = head
    if last_id < head_id:
        return f"row {head_id}" if last_id + 1 == head_id else f"rows {last_id + 1}..{head_id}"
    kept = conn.execute(select(audit.c.digest).where(audit.c.id == head_id)).scalar()
    return None if kept == head_digest else f"rows {head_id}..{last_id}"


def check_chain(secret: bytes, rows: Iterable[dict[str, Any]], head: tuple[int, str] | None = None) -> Verdict:
    """Walk `rows` (every column, in id order) and say where the chain first breaks; `head` is the
    (id, digest) of the newest row appended, as kept outside the database (`_audit_head`). Pure."""
    legacy: list[dict[str, Any]] = []
    prev: str | None = None  # the digest of the last chained row
    count = chained = 0
    for row in rows:
        count += 1
        problem = _row_problem(secret, row, count - 1, prev, legacy)
        if not problem and head is not None and row["id"] == head[0] and row["digest"] != head[1]:
            problem = "is not the row appended with this id (the log was cut back and written again from here)"
        if problem:
            return Verdict(False, count, chained, row["id"], f"row {row['id']}: {problem}")
        if row["digest"] is None:
            legacy.append(row)
        else:
            prev, chained = row["digest"], chained + 1
    if count and not chained:
        return Verdict(False, count, 0, 1, f"row 1: none of the {count} rows carries a digest (every digest was "
                                           "removed, or nothing was audited since the upgrade to the chained log)")
    if head is not None and count < head[0]:
        gone = f"row {head[0]} is" if count + 1 == head[0] else f"rows {count + 1}..{head[0]} are"
        return Verdict(False, count, chained, count + 1,
                       f"row {count + 1}: {gone} missing from the end (row {head[0]} was appended; removed since)")
    return Verdict(True, count, chained)


def _row_problem(secret: bytes, row: dict[str, Any], prev_id: int, prev: str | None,
                 legacy: list[dict[str, Any]]) -> str | None:
    """Why `row` breaks the chain after row `prev_id` (ids count from 1 without gaps), or None."""
    rid = row["id"]
    if rid != prev_id + 1:
        gap = rid - prev_id - 1
        missing = f"row {prev_id + 1} is" if gap == 1 else f"rows {prev_id + 1}..{rid - 1} are"
        return f"{missing} missing before it (deleted)" if gap > 0 else "its id is out of order"
    if row["digest"] is None:
        return None if prev is None else "carries no digest after chained rows (removed, or the row was inserted)"
    if not hmac.compare_digest(mac(secret, row["prev_digest"] or "", row), row["digest"]):
        return "its fields do not match its digest (altered, or inserted with a forged digest)"
    expected_prev = prev if prev is not None else _seed(secret, legacy)
    if not hmac.compare_digest(row["prev_digest"] or "", expected_prev):
        return "does not follow the row before it (rows reordered, or the row before it altered or replaced)"
    if row["action"] == CUT:
        return f"records that {row['target']} had been removed from the end of the log before it was written"
    return None


def verify(conn: Connection, *, secret: bytes | None = None, head: tuple[int, str] | None = None,
           batch: int = 5000) -> Verdict:
    """Verify the whole log in id order, reading it in batches; with `head`, also that the newest
    row appended is still there (a cut tail leaves a valid chain)."""
    secret = secret if secret is not None else key()

    def rows() -> Iterable[dict[str, Any]]:
        after = -1
        while True:
            page = conn.execute(select(audit).where(audit.c.id > after).order_by(audit.c.id).limit(batch)).all()
            for r in page:
                yield dict(r._mapping)
            if len(page) < batch:
                return
            after = page[-1].id

    return check_chain(secret, rows(), head)


def query(conn: Connection, *, limit: int = 100, since_s: float | None = None, actor: str | None = None,
          action: str | None = None) -> list[dict[str, Any]]:
    """Rows newest first, optionally only those at or after `since_s`, by `actor`, of `action`
    (an action ending in `*` matches by prefix: `tokens.*`)."""
    q = select(audit).order_by(audit.c.id.desc()).limit(limit)
    if since_s is not None:
        q = q.where(audit.c.at_s >= since_s)
    if actor:
        q = q.where(audit.c.actor == actor)
    if action:
        q = q.where(audit.c.action.startswith(action[:-1], autoescape=True) if action.endswith("*")
                    else audit.c.action == action)
    return [{k: v for k, v in r._mapping.items() if k not in ("prev_digest",)} for r in conn.execute(q)]
