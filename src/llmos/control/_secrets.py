"""Per-project secrets: set once by a developer of the project, referenced by specs, seen only by the job.

A spec names a secret as `${secret:NAME}` inside an `env` value (`env: {HF_TOKEN: "${secret:HF_TOKEN}"}`,
or `"Bearer ${secret:API}"`); anywhere else a reference is refused at submit, because only the
environment is handed to the job without being stored or shown. The stored spec keeps the reference;
the value is decrypted when an attempt starts and goes only into that attempt's environment. Values
are Fernet tokens in the database; the key is `LLMOS_HOME/control/secrets.key` (0600), never in the
database, so a copy of the database alone reveals nothing. Logs the API serves have every value of
the secrets the job references replaced by `***` (`_logfiles.redact`).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from llmos.control._errors import NotFound, Rejected
from llmos.control._secret_refs import REF, references, resolve_env, valid_name
from llmos.errors import LlmosError, SpecError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["check_references", "job_values", "key_file", "list_secrets", "remove_secret", "set_secret", "values_for",
           "with_secrets"]

_MAX_VALUE_BYTES = 64 * 1024
_KEY_LOCK = threading.Lock()
_CIPHERS: dict[Path, Any] = {}  # key file -> its Fernet


# ---- the key ---------------------------------------------------------------------------------
def key_file() -> Path:
    from llmos.control._paths import control_dir

    return control_dir() / "secrets.key"


def _fernet() -> Any:
    """The cipher of this home's key, made (0600) on first use; one per key file, behind a lock so that
    two first requests at once neither make two keys nor read a half-written one."""
    from cryptography.fernet import Fernet

    path = key_file()
    with _KEY_LOCK:
        if path not in _CIPHERS:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # only the daemon's user reads it
            except FileExistsError:
                if path.stat().st_mode & 0o077:
                    path.chmod(0o600)
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(Fernet.generate_key())
            try:
                _CIPHERS[path] = Fernet(path.read_bytes().strip())
            except ValueError:
                raise LlmosError(f"{path} does not hold a Fernet key (32 url-safe base64 bytes).",
                                 hint="Restore it from the backup kept with the database; a new key cannot "
                                      "read the stored secrets (set them again after removing the file).") from None
        return _CIPHERS[path]


# ---- the store -------------------------------------------------------------------------------
def check_name(name: str) -> None:
    if not valid_name(name):
        raise Rejected(f"{name[:200]!r} is not a secret name.",
                       hint="Use letters, digits and _ (not first), at most 128 characters, e.g. HF_TOKEN.")


def set_secret(conn: Connection, project: str, name: str, value: str, actor: str, now_s: float | None = None) -> dict:
    from sqlalchemy import insert, select, update

    from llmos.control._schema import secrets

    check_name(name)
    if not value or "\x00" in value or len(value.encode()) > _MAX_VALUE_BYTES:
        raise Rejected(f"secret {name}: the value must be 1 byte to 64 KiB of text without NUL bytes.",
                       hint="Pipe it in: llmos secrets set NAME < file, or --from-file FILE")
    now = now_s or time.time()
    token = _fernet().encrypt(value.encode()).decode()
    where = (secrets.c.project == project) & (secrets.c.name == name)
    if conn.execute(select(secrets.c.name).where(where)).first() is None:
        conn.execute(insert(secrets).values(project=project, name=name, value=token, created_s=now, updated_s=now,
                                            updated_by=actor))
        return {"project": project, "name": name, "created": True, "updated_s": now}
    conn.execute(update(secrets).where(where).values(value=token, updated_s=now, updated_by=actor))
    return {"project": project, "name": name, "created": False, "updated_s": now}


def list_secrets(conn: Connection, project: str) -> list[dict]:
    """Names and times only: a value never leaves the store but into a job's environment."""
    from sqlalchemy import select

    from llmos.control._schema import secrets

    rows = conn.execute(select(secrets.c.name, secrets.c.created_s, secrets.c.updated_s, secrets.c.updated_by)
                        .where(secrets.c.project == project).order_by(secrets.c.name))
    return [{"project": project, **dict(r._mapping)} for r in rows]


def remove_secret(conn: Connection, project: str, name: str) -> dict:
    from sqlalchemy import delete

    from llmos.control._schema import secrets

    check_name(name)
    gone = conn.execute(delete(secrets).where(secrets.c.project == project, secrets.c.name == name)).rowcount
    if not gone:
        raise NotFound(f"project {project} has no secret {name}.", hint=f"List them with: llmos secrets ls --project "
                                                                        f"{project}")
    return {"project": project, "name": name, "removed": True}


def values_for(conn: Connection, project: str, names: set[str]) -> dict[str, str]:
    """The plain values of `names` in `project` (those that exist)."""
    from cryptography.fernet import InvalidToken
    from sqlalchemy import select

    from llmos.control._schema import secrets

    if not names:
        return {}
    rows = conn.execute(select(secrets.c.name, secrets.c.value).where(secrets.c.project == project,
                                                                      secrets.c.name.in_(sorted(names))))
    fernet, out = _fernet(), {}
    for name, token in rows:
        try:
            out[name] = fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise LlmosError(f"secret {name} of project {project} cannot be decrypted with {key_file()} "
                             "(the key was replaced?).",
                             hint=f"Set it again: llmos secrets set {name} --project {project}") from None
    return out


# ---- at submit and at start ------------------------------------------------------------------
def check_references(conn: Connection, job: BaseModel, project: str) -> None:
    """Refuse (422) a spec whose secret references are misplaced or name secrets `project` lacks."""
    from sqlalchemy import select

    from llmos.control._schema import secrets

    uses, problems = references(job)
    missing: list[str] = []
    if uses:
        known = set(conn.execute(select(secrets.c.name).where(secrets.c.project == project)).scalars())
        problems += [(key, f"project {project} has no secret {name}") for key, name in uses if name not in known]
        missing = sorted({name for _, name in uses} - known)
    if problems:
        raise SpecError("the spec's secret references cannot be used:", problems=problems,
                        hint=f"Set a secret with: llmos secrets set {missing[0] if missing else 'NAME'} --project "
                             f"{project} (the value is read from stdin); reference it as ${{secret:NAME}} in env")


def with_secrets(engine: Engine, project: str, job: Any) -> Any:
    """`job` with its env's references replaced by their values, for its launch only (never stored).
    The store is read only for a job that references a secret."""
    from llmos.control._db import read

    env = getattr(job, "env", None)
    if not env:
        return job
    names = {name for v in env.values() for name in REF.findall(v)}
    if not names:
        return job
    with read(engine) as conn:
        values = values_for(conn, project, names)
    missing = sorted(names - values.keys())
    if missing:
        raise LlmosError(f"secret {missing[0]} of project {project} was removed after the job was submitted.",
                         hint=f"Set it again: llmos secrets set {missing[0]} --project {project}")
    return job.model_copy(update={"env": resolve_env(env, values)})


def job_values(conn: Connection, project: str, spec: dict[str, Any]) -> list[str]:
    """The values of the secrets a stored spec references (what its logs must not show)."""
    env = spec.get("env") if isinstance(spec.get("env"), dict) else {}
    names = {name for v in env.values() if isinstance(v, str) for name in REF.findall(v) if valid_name(name)}
    try:
        return list(values_for(conn, project, names).values()) if names else []
    except LlmosError:  # the key was replaced: nothing can be decrypted, nor redacted; still serve the log
        return []
