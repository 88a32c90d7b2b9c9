"""Executors: where the control plane's placed attempts run.

Two backends behind one interface (`Executor`): `LocalExecutor` (processes on this machine,
pinned to their cores) and the Ray executor (`ray_executor`, workers on many machines through
placement groups; `pip install 'llmos[ray]'`, imported only when asked for). The job kinds table
(`KINDS`) says, for each kind, its request, its program and what a stop means.
"""

from llmos.executor._base import Executor, Exit, NotPlaced, attempt_dir
from llmos.executor._hosts import NODE, Cluster, Gpu, Inventory
from llmos.executor._kinds import KINDS, Kind, Program, Request, kind_of, parse_spec
from llmos.executor._local import LocalExecutor, Proc, alive, isolated

__all__ = [
    "KINDS",
    "NODE",
    "Cluster",
    "Executor",
    "Exit",
    "Gpu",
    "Inventory",
    "Kind",
    "LocalExecutor",
    "NotPlaced",
    "Proc",
    "Program",
    "Request",
    "alive",
    "attempt_dir",
    "isolated",
    "kind_of",
    "parse_spec",
]
