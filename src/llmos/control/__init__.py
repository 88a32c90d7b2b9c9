"""The control plane: a daemon that queues, places and runs jobs on this machine.

`llmos up` starts it (REST API on 127.0.0.1, scheduling loop, local executor, state in SQLite
or PostgreSQL); `Client` is its Python API. The daemon's parts live in private modules:
`_db`/`_schema` (state), `_transition` (the one way a job changes state), `_loop` (scheduling
round), `_executor` (placement and processes), `_app` (REST), `_auth` (tokens, roles, audit).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmos.control._client import Client
    from llmos.control._config import ControlConfig, load_config
    from llmos.control._errors import Conflict, ControlError, Forbidden, NotFound, NotRunning, Rejected, Unauthorized
    from llmos.control._lifecycle import down, running, up
    from llmos.control._states import JobState
    from llmos.control._submit import load_submission, spec_project
    from llmos.spec import CommandJob, CommandResources

# Imported on first use (PEP 562): a CLI command that only talks to the daemon (`llmos jobs
# show`, run several times a second by scripts that poll) does not load the spec models.
_HOMES = {
    "Client": "llmos.control._client",
    "ControlConfig": "llmos.control._config", "load_config": "llmos.control._config",
    **dict.fromkeys(["Conflict", "ControlError", "Forbidden", "NotFound", "NotRunning", "Rejected", "Unauthorized"],
                    "llmos.control._errors"),
    "down": "llmos.control._lifecycle", "running": "llmos.control._lifecycle", "up": "llmos.control._lifecycle",
    "JobState": "llmos.control._states",
    "load_submission": "llmos.control._submit", "spec_project": "llmos.control._submit",
    "CommandJob": "llmos.spec", "CommandResources": "llmos.spec",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'llmos.control' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "Client",
    "CommandJob",
    "CommandResources",
    "Conflict",
    "ControlConfig",
    "ControlError",
    "Forbidden",
    "JobState",
    "NotFound",
    "NotRunning",
    "Rejected",
    "Unauthorized",
    "down",
    "load_config",
    "load_submission",
    "running",
    "spec_project",
    "up",
]
