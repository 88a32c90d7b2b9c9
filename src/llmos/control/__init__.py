"""The control plane: a daemon that queues, places and runs jobs on this machine.

`llmos up` starts it (REST API on 127.0.0.1, scheduling loop, local executor, state in SQLite
or PostgreSQL); `Client` is its Python API. The daemon's parts live in private modules:
`_db`/`_schema` (state), `_transition` (the one way a job changes state), `_loop` (scheduling
round), `_executor` (placement and processes), `_app` (REST), `_auth` (tokens, roles, audit).
"""

from llmos.control._client import Client
from llmos.control._config import ControlConfig, load_config
from llmos.control._errors import Conflict, ControlError, Forbidden, NotFound, NotRunning, Rejected, Unauthorized
from llmos.control._lifecycle import down, running, up
from llmos.control._states import JobState
from llmos.control._submit import load_submission, spec_project
from llmos.spec import CommandJob, CommandResources

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
