"""The processes of a test cluster's Ray nodes: their environment and token, finding and killing them,
`ray start`, and what the GCS says about the nodes (read without being a Ray driver)."""

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
from typing import IO, Any

__all__ = ["AUTH_VARS", "MARK", "RAY", "START_TIMEOUT_S", "TOKEN_DIR_PREFIX", "check_ray_start", "claim_slot",
           "free_port", "gcs_nodes", "kill", "listening", "pids", "popen_ray_start", "ray_env",
           "remove_stale_token_dirs", "restore", "use_token", "wait"]

AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
MARK = "LLMOS_TESTCLUSTER"  # in the environment of every Ray process a cluster starts: "<slot>:<node>"
TOKEN_DIR_PREFIX = "llmos-tc-token-"
SLOTS = 4
START_TIMEOUT_S = 120.0
RAY = Path(sys.executable).parent / "ray"


def ray_env(slot: int, node: str) -> dict[str, str]:
    """A node's environment: the machine's, without the test process's llmos, pytest and Ray variables
    (a real node does not inherit the driver's), with usage stats off, the cluster's token auth
    (os.environ holds it from start_cluster on) and the mark that finds the node's processes. The
    run's folder for warm fork servers stays: a node's servers end with the test run, not 10 minutes
    after it in the machine's temp folder."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LLMOS_", "PYTEST_", "RAY_")) or k == "LLMOS_RUNTIME_DIR"}
    auth = {k: os.environ[k] for k in AUTH_VARS if k in os.environ}
    return {**env, **auth, "RAY_USAGE_STATS_ENABLED": "0", MARK: f"{slot}:{node}"}


def use_token(path: Path) -> dict[str, str | None]:
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


def remove_stale_token_dirs() -> None:
    """Token folders of test processes that died without stop()."""
    for folder in Path(tempfile.gettempdir()).glob(TOKEN_DIR_PREFIX + "*-*"):
        pid = folder.name[len(TOKEN_DIR_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def restore(variables: dict[str, str | None]) -> None:
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


def wait(what: str, check: Callable[[], bool], timeout_s: float) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"test cluster: {what} not within {timeout_s:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - start


def free_port(first: int) -> int:
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


def claim_slot() -> tuple[int, IO[str]]:
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


def pids(mark: str, folder: Path) -> list[int]:
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


def kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def popen_ray_start(args: list[str], env: dict[str, str], prefix: tuple[str, ...] | list[str] = ()
                    ) -> subprocess.Popen[str]:
    """`ray start ARGS`, run after `prefix` (what puts it on a node); check_ray_start waits for it."""
    return subprocess.Popen([*prefix, str(RAY), "start", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def check_ray_start(name: str, proc: subprocess.Popen[str]) -> None:
    try:
        output, _ = proc.communicate(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"test cluster: `ray start` of {name} failed ({proc.returncode}):\n{output[-3000:]}")
