"""A real Ray cluster that the tests start themselves: a head in the root namespace (where the test
process, the Ray driver, runs) and worker nodes with their own IP addresses in network namespaces,
or, where namespaces are not available (not root, no iproute2), Ray's own multi-node test cluster on
127.0.0.1 with the same interface.

    cluster = start_cluster(["n1", "n2"], storage=folder)
    ray.init(address=cluster.address)
    cluster.kill_node("n1")      # SIGKILL every process of that host; returns once Ray reports it dead
    cluster.start_node("n1")     # back again, with a new Ray node id
    cluster.stop()
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from tests.cluster import _netns

__all__ = ["TestCluster", "gcs_nodes", "start_cluster"]

AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
MARK = "LLMOS_TESTCLUSTER"
TOKEN_DIR_PREFIX = "llmos-tc-token-"  # in the environment of every Ray process a cluster starts: "<slot>:<node>"
SLOTS = 4
NODE_CPUS = 2  # Ray logical CPUs: the cluster-mode tests need a node that holds a 2-worker gang after another is lost
NODE_MEMORY_BYTES = 4 << 30
OBJECT_STORE_BYTES = 100 << 20  # Ray's floor is 75 MiB; the default (30% of RAM per node) is far too much here
START_TIMEOUT_S = 120.0
RAY = Path(sys.executable).parent / "ray"


def _ray_env(slot: int, node: str) -> dict[str, str]:
    """A node's environment: the machine's, without the test process's llmos, pytest and Ray variables
    (a real node does not inherit the driver's), with usage stats off, the cluster's token auth
    (os.environ holds it from start_cluster on) and the mark that finds the node's processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOS_", "PYTEST_", "RAY_"))}
    auth = {k: os.environ[k] for k in AUTH_VARS if k in os.environ}
    return {**env, **auth, "RAY_USAGE_STATS_ENABLED": "0", MARK: f"{slot}:{node}"}


def _use_token(path: Path) -> dict[str, str | None]:
    """Token authentication for this cluster: a fresh token in `path`, named in this process's environment
    (so every node, this process as a Ray driver and every process it starts use it). Without an explicit
    mode Ray 2.60 picks one by itself: token when ~/.ray/auth_token exists (a local ray.init() writes it),
    so a head and a node could disagree. Returns the variables' old values, for stop()."""
    from ray._raylet import AuthenticationTokenLoader, Config

    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(secrets.token_hex(32))
    old = {k: os.environ.get(k) for k in AUTH_VARS}
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)})
    Config.initialize("")  # what Ray itself does after changing the mode
    AuthenticationTokenLoader.instance().reset_cache()
    return old


def _remove_stale_token_dirs() -> None:
    """Token folders of test processes that died without stop()."""
    for folder in Path(tempfile.gettempdir()).glob(TOKEN_DIR_PREFIX + "*-*"):
        pid = folder.name[len(TOKEN_DIR_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def _restore(variables: dict[str, str | None]) -> None:
    for key, value in variables.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def gcs_nodes(address: str) -> list[dict[str, Any]]:
    """Every node the GCS knows (dead ones too), read without being a Ray driver: node_id (hex), ip,
    alive, draining (a drain request is in force; see docs/cluster.md), labels."""
    from ray._raylet import GcsClient
    from ray.core.generated import gcs_pb2

    client = GcsClient(address=address)
    draining = set(client.get_draining_nodes())  # node id hex -> deadline (ms since the epoch, 0: none)
    rows = []
    for node_id, info in client.get_all_node_info(timeout=10).items():
        rows.append({"node_id": node_id.hex(), "ip": info.node_manager_address,
                     "alive": info.state == gcs_pb2.GcsNodeInfo.GcsNodeState.ALIVE,
                     "draining": node_id.hex() in draining, "labels": dict(info.labels)})
    return rows


def _wait(what: str, check: Callable[[], bool], timeout_s: float) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"test cluster: {what} not within {timeout_s:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - start


def _free_port(first: int) -> int:
    """The first port from `first` that nothing listens on, on any address (the GCS binds them all; the
    machine may run redis on 127.0.0.1:6379, Ray's default)."""
    for port in range(first, first + 200):
        with socket.socket() as s:
            try:
                s.bind(("", port))
                return port
            except OSError:
                continue
    raise RuntimeError(f"test cluster: no free port in {first}..{first + 199}")


def _claim_slot() -> tuple[int, IO[str]]:
    """An exclusive lock on one of SLOTS slots, held until stop() (or until this process dies). Whatever
    the slot's names still hold once we hold its lock is a crashed run's leftover."""
    for slot in range(SLOTS):
        lock = open(f"/tmp/llmos-testcluster-{slot}.lock", "w")  # noqa: SIM115 (held open as the lock)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return slot, lock
        except BlockingIOError:
            lock.close()
    raise RuntimeError(f"test cluster: all {SLOTS} slots are held by other test runs")


def _pids(mark: str, folder: Path) -> list[int]:
    """Processes whose environment carries MARK=<mark>... (one node's `"0:n1"`, a slot's `"0:"`) or that
    hold a file open under `folder` (the node's or slot's temp dir): the raylet starts its agents with an
    environment of its own, without the mark, and they outlive a killed raylet."""
    needle, under = f"{MARK}={mark}".encode(), f"{folder}/"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            if any(item.startswith(needle) for item in environ) or any(
                    os.readlink(fd).startswith(under) for fd in (entry / "fd").iterdir()):
                pids.append(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return pids


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class _Backend(Protocol):
    mode: str
    address: str
    head_ip: str
    nodes: dict[str, str]

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
        return _wait(f"node {name} reported dead", lambda: self._state(node_id) is False, timeout_s)

    def start_node(self, name: str, timeout_s: float = START_TIMEOUT_S) -> float:
        """Start node `name` (again); returns the seconds until the GCS reported it alive."""
        start = time.monotonic()
        self._backend.start(name)
        _wait(f"node {name} alive", lambda: self._backend.node_id(name) is not None, timeout_s)
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
            _restore(self._old_env)
            shutil.rmtree(self._token_dir, ignore_errors=True)

    def _state(self, node_id: str) -> bool | None:
        """True alive, False dead, None unknown."""
        for row in gcs_nodes(self.address):
            if row["node_id"] == node_id:
                return bool(row["alive"])
        return None


class _Namespaces:
    """Head in the root namespace on the bridge's address, each worker node in its own namespace."""

    mode = "netns"

    def __init__(self, names: list[str], memory_bytes: int, health_check_period_ms: int | None) -> None:
        self._health_check_period_ms = health_check_period_ms
        self.slot, self._lock = _claim_slot()
        self.net = _netns.Net(self.slot)
        self.temp_root = Path(f"/tmp/llmos-tc{self.slot}")  # short: Ray's socket paths must stay < 108 bytes
        self._memory_bytes = memory_bytes
        self._cleanup()
        try:
            self.nodes = _netns.create(self.net, names)
        except BaseException:
            self.stop()
            raise
        self.head_ip = self.net.head_ip
        self.address = f"{self.head_ip}:{_free_port(6380 + 10 * self.slot)}"

    def start_head(self) -> None:
        # --num-cpus=0: no task or worker lands on the head, which is the daemon's (the driver's) machine.
        # The GCS declares a node dead after health_check_failure_threshold (5) missed checks, one every
        # health_check_period_ms (Ray's default 3000: ~15 s from a lost machine to a dead node).
        env = _ray_env(self.slot, "head")
        if self._health_check_period_ms is not None:
            env["RAY_health_check_period_ms"] = str(self._health_check_period_ms)
        _run_ray_start(["--head", "--port", self.address.rsplit(":", 1)[1], "--num-cpus=0",
                        "--include-dashboard=false", *self._common("head", self.head_ip)], env)

    def start(self, name: str) -> None:
        self.start_many([name])

    def start_many(self, names: list[str]) -> None:
        """`ray start` of several nodes at once (each has its own temp dir, so their sockets never clash)."""
        procs = [subprocess.Popen(self.command_on(name, [str(RAY), "start", "--address", self.address,
                                                         f"--num-cpus={NODE_CPUS}", f"--memory={self._memory_bytes}",
                                                         *self._common(name, self.nodes[name])]),
                                  env=_ray_env(self.slot, name), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for name in names]
        for name, proc in zip(names, procs, strict=True):
            _check_ray_start(name, proc)

    def _common(self, name: str, ip: str) -> list[str]:
        return ["--node-ip-address", ip, f"--object-store-memory={OBJECT_STORE_BYTES}",
                f"--temp-dir={self.temp_root / name}", "--disable-usage-stats"]

    def kill(self, name: str) -> None:
        _kill(_netns.pids_on(self.net.namespace(name)) + _pids(f"{self.slot}:{name}", self.temp_root / name))

    def node_id(self, name: str) -> str | None:
        ip = self.nodes[name]
        alive = [row["node_id"] for row in gcs_nodes(self.address) if row["ip"] == ip and row["alive"]]
        return alive[0] if alive else None

    def command_on(self, name: str, argv: list[str]) -> list[str]:
        return _netns.command_on(self.net, name, argv)

    def hostname(self, name: str) -> str:
        return self.net.namespace(name)

    def stop(self) -> None:
        self._cleanup()
        self._lock.close()

    def _cleanup(self) -> None:
        """End every process of this slot (ours or a crashed run's; Ray's and whatever tests started on its
        nodes), then its namespaces, bridge and files."""
        for _ in range(3):  # a process may fork while we kill its siblings
            on_nodes = [pid for namespace in _netns.namespaces(self.net) for pid in _netns.pids_on(namespace)]
            _kill(on_nodes + _pids(f"{self.slot}:", self.temp_root))
        _netns.destroy(self.net)
        shutil.rmtree(self.temp_root, ignore_errors=True)


def _run_ray_start(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.Popen([str(RAY), "start", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    _check_ray_start("head", proc)


def _check_ray_start(name: str, proc: subprocess.Popen[str]) -> None:
    try:
        output, _ = proc.communicate(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"test cluster: `ray start` of {name} failed ({proc.returncode}):\n{output[-3000:]}")


class _Local:
    """Ray's own multi-node test cluster (ray.cluster_utils.Cluster): every node on 127.0.0.1."""

    mode = "local"

    def __init__(self, names: list[str], memory_bytes: int, health_check_period_ms: int | None) -> None:
        from ray.cluster_utils import Cluster

        self._memory_bytes = memory_bytes
        config = {} if health_check_period_ms is None else {"health_check_period_ms": health_check_period_ms}
        self._cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "include_dashboard": False, "object_store_memory": OBJECT_STORE_BYTES,
            "_system_config": config})
        self.address = self._cluster.address
        self.head_ip = self.address.rsplit(":", 1)[0]
        self.nodes = dict.fromkeys(names, self.head_ip)
        self._ray_nodes: dict[str, Any] = {}

    def start(self, name: str) -> None:
        self._ray_nodes[name] = self._cluster.add_node(num_cpus=NODE_CPUS, memory=self._memory_bytes,
                                                       object_store_memory=OBJECT_STORE_BYTES)

    def start_many(self, names: list[str]) -> None:
        for name in names:
            self.start(name)

    def kill(self, name: str) -> None:
        """The node's own processes, and everything its raylet started (workers and their children, which
        on a lost machine die with it)."""
        import psutil

        node = self._ray_nodes.pop(name)
        raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
        started = [p.pid for p in raylet.children(recursive=True)]
        self._cluster.remove_node(node, allow_graceful=False)
        _kill(started)

    def node_id(self, name: str) -> str | None:
        node = self._ray_nodes.get(name)
        if node is None:
            return None
        alive = {row["node_id"] for row in gcs_nodes(self.address) if row["alive"]}
        return node.node_id if node.node_id in alive else None

    def command_on(self, name: str, argv: list[str]) -> list[str]:
        return argv

    def hostname(self, name: str) -> str:
        return self.nodes[name]

    def stop(self) -> None:
        self._cluster.shutdown()


def start_cluster(names: list[str], storage: Path, memory_bytes: int = NODE_MEMORY_BYTES,
                  health_check_period_ms: int | None = None) -> TestCluster:
    """Head plus one worker node per name (NODE_CPUS CPUs, `memory_bytes` of Ray memory each), all alive
    when this returns. Namespaces where possible; LLMOS_TESTCLUSTER_MODE=local forces the fallback.
    health_check_period_ms: None keeps Ray's default (3000 ms, a lost node is dead after ~15 s)."""
    reason = "LLMOS_TESTCLUSTER_MODE=local" if os.environ.get("LLMOS_TESTCLUSTER_MODE") == "local" else \
        _netns.unavailable_reason()
    _remove_stale_token_dirs()
    token_dir = Path(tempfile.mkdtemp(prefix=f"{TOKEN_DIR_PREFIX}{os.getpid()}-"))
    old_env = _use_token(token_dir / "auth_token")
    try:
        backend: _Namespaces | _Local = _Local(names, memory_bytes, health_check_period_ms) if reason else \
            _Namespaces(names, memory_bytes, health_check_period_ms)
    except BaseException:
        _restore(old_env)
        shutil.rmtree(token_dir, ignore_errors=True)
        raise
    cluster = TestCluster(backend, storage, reason or "network namespaces", token_dir, old_env)
    try:
        if isinstance(backend, _Namespaces):
            backend.start_head()
        backend.start_many(names)
        for name in names:
            _wait(f"node {name} alive", lambda n=name: backend.node_id(n) is not None, START_TIMEOUT_S)
    except BaseException:
        cluster.stop()
        raise
    return cluster
