"""A real Ray cluster that the tests start themselves: a head in the root namespace (where the test
process, the Ray driver, runs) and worker nodes with their own IP addresses in network namespaces,
or, where namespaces are not available (not root, no iproute2), Ray's own multi-node test cluster on
this host's address with the same interface.

    cluster = start_cluster(["n1", "n2"], storage=folder)
    ray.init(address=cluster.address)
    cluster.kill_node("n1")      # SIGKILL every process of that host; returns once Ray reports it dead
    cluster.start_node("n1")     # back again, with a new Ray node id
    cluster.stop()
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Protocol

from tests.cluster import _netns
from tests.cluster._backends import NODE_CPUS, NODE_MEMORY_BYTES, Local, Namespaces
from tests.cluster._rayproc import (
    AUTH_VARS,
    RAY,
    START_TIMEOUT_S,
    TOKEN_DIR_PREFIX,
    gcs_nodes,
    remove_stale_token_dirs,
    restore,
    use_token,
    wait,
)

__all__ = ["NODE_CPUS", "NODE_MEMORY_BYTES", "RAY", "TestCluster", "gcs_nodes", "start_cluster"]


class _Backend(Protocol):
    mode: str
    address: str
    head_ip: str
    nodes: dict[str, str]

    def start_all(self, names: list[str]) -> None: ...
    def start(self, name: str) -> None: ...
    def kill(self, name: str) -> None: ...
    def node_id(self, name: str) -> str | None: ...
    def command_on(self, name: str, argv: list[str]) -> list[str]: ...
    def hostname(self, name: str) -> str: ...
    def stop(self) -> None: ...


class TestCluster:
    """A started cluster: `address` ("10.77.0.1:6380"), `head_ip`, `nodes` (name -> IP), `storage` (a
    folder every node sees), `mode` ("netns" or "local", with `mode_reason`)."""

    __test__ = False  # not a pytest test class

    def __init__(self, backend: _Backend, storage: Path, mode_reason: str, token_dir: Path,
                 old_env: dict[str, str | None]) -> None:
        self._backend = backend
        self.storage = storage
        self.mode_reason = mode_reason
        self._token_dir = token_dir
        self._old_env = old_env

    @property
    def env(self) -> dict[str, str]:
        """What a process needs in its environment to reach this cluster (token authentication). This
        process's os.environ holds it until stop(); processes it starts inherit it."""
        return {k: os.environ[k] for k in AUTH_VARS if k in os.environ}

    @property
    def mode(self) -> str:
        return self._backend.mode

    @property
    def address(self) -> str:
        return self._backend.address

    @property
    def head_ip(self) -> str:
        return self._backend.head_ip

    @property
    def nodes(self) -> dict[str, str]:
        return dict(self._backend.nodes)

    def node_ids(self) -> dict[str, str]:
        """name -> Ray node id (hex) of every worker node that is alive now."""
        ids = {name: self._backend.node_id(name) for name in self._backend.nodes}
        return {name: node_id for name, node_id in ids.items() if node_id is not None}

    def command_on(self, name: str, argv: list[str]) -> list[str]:
        """argv run on node `name` (its namespace and hostname; unchanged in local mode)."""
        return self._backend.command_on(name, argv)

    def hostname(self, name: str) -> str:
        """The name node `name` has, which resolves to its address on every node (local mode: its address)."""
        return self._backend.hostname(name)

    def kill_node(self, name: str, timeout_s: float = 90.0) -> float:
        """Lose node `name` as a machine is lost: SIGKILL its raylet and every worker on it. Returns the
        seconds until the GCS reported it dead."""
        node_id = self.node_ids()[name]
        self._backend.kill(name)
        return wait(f"node {name} reported dead", lambda: self._state(node_id) is False, timeout_s)

    def start_node(self, name: str, timeout_s: float = START_TIMEOUT_S) -> float:
        """Start node `name` (again); returns the seconds until the GCS reported it alive."""
        start = time.monotonic()
        self._backend.start(name)
        wait(f"node {name} alive", lambda: self._backend.node_id(name) is not None, timeout_s)
        return time.monotonic() - start

    def stop(self) -> None:
        """Disconnect this process's driver (a driver whose GCS vanishes aborts its process later), then
        end every process of the cluster."""
        import ray

        if ray.is_initialized():
            ray.shutdown()
        try:
            self._backend.stop()
        finally:
            restore(self._old_env)
            shutil.rmtree(self._token_dir, ignore_errors=True)

    def _state(self, node_id: str) -> bool | None:
        """True alive, False dead, None unknown."""
        for row in gcs_nodes(self.address):
            if row["node_id"] == node_id:
                return bool(row["alive"])
        return None


def start_cluster(names: list[str], storage: Path, memory_bytes: int = NODE_MEMORY_BYTES,
                  health_check_period_ms: int | None = None) -> TestCluster:
    """Head plus one worker node per name (NODE_CPUS CPUs, `memory_bytes` of Ray memory each), all alive
    when this returns. Namespaces where possible; LLMOS_TESTCLUSTER_MODE=local forces the fallback.
    health_check_period_ms: None keeps Ray's default (3000 ms, a lost node is dead after ~15 s)."""
    reason = "LLMOS_TESTCLUSTER_MODE=local" if os.environ.get("LLMOS_TESTCLUSTER_MODE") == "local" else \
        _netns.unavailable_reason()
    remove_stale_token_dirs()
    token_dir = Path(tempfile.mkdtemp(prefix=f"{TOKEN_DIR_PREFIX}{os.getpid()}-"))
    old_env = use_token(token_dir / "auth_token")
    try:
        backend: Namespaces | Local = Local(names, memory_bytes, health_check_period_ms) if reason else \
            Namespaces(names, memory_bytes, health_check_period_ms)
    except BaseException:
        restore(old_env)
        shutil.rmtree(token_dir, ignore_errors=True)
        raise
    cluster = TestCluster(backend, storage, reason or "network namespaces", token_dir, old_env)
    try:
        backend.start_all(names)
        for name in names:
            wait(f"node {name} alive", lambda n=name: backend.node_id(n) is not None, START_TIMEOUT_S)
    except BaseException:
        cluster.stop()
        raise
    return cluster
