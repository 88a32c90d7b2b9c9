"""Proof, at the daemon's start, that every node sees the cluster's storage: each node reads a
file the daemon wrote and writes one the daemon reads back. A node that cannot is named, with the fix."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from llmos.errors import LlmosError
from llmos.executor._hosts import Cluster

__all__ = ["prove_storage"]

_TIMEOUT_S = 60.0


def _visit(folder: str, token: str, node: str) -> str:
    """Runs on `node`: '' when it read the daemon's token and wrote its own, else what went wrong."""
    import socket

    here = Path(folder)
    try:
        seen = (here / "daemon").read_text()
    except OSError as exc:
        return f"cannot read {here / 'daemon'}: {exc.strerror or exc}"
    if seen != token:
        return f"{here / 'daemon'} holds another control plane's probe (a different folder at this path?)"
    try:
        (here / node).write_text(f"{token} {socket.gethostname()}")
    except OSError as exc:
        return f"cannot write {here / node}: {exc.strerror or exc}"
    return ""


def prove_storage(storage: Path, cluster: Cluster) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not cluster.hosts:
        return  # no node offers CPUs yet: nothing to check
    folder = storage / ".probe" / secrets.token_hex(6)
    folder.mkdir(parents=True)
    token = secrets.token_hex(16)
    (folder / "daemon").write_text(token)
    visit = ray.remote(num_cpus=0, max_retries=0)(_visit)
    try:
        calls = [visit.options(scheduling_strategy=NodeAffinitySchedulingStrategy(h.name, soft=False))
                 .remote(str(folder), token, h.name) for h in cluster.hosts]
        problems = []
        for call, host in zip(calls, cluster.hosts, strict=True):
            try:
                said = ray.get(call, timeout=_TIMEOUT_S)
            except Exception as exc:  # the task could not run there: a dead node, a missing llmos
                said = f"the check could not run there ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            if not said and _read(folder / host.name) != token:
                said = "what it wrote there is not what the daemon reads back at the same path"
            if said:
                problems.append(f"node {host.address} ({host.name[:8]}): {said}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if problems:
        raise LlmosError(f"the storage {storage} is not shared by every node:\n  " + "\n  ".join(problems),
                         hint="Mount the same shared folder (NFS, a cluster file system) at this path on every Ray "
                              "node, with llmos installed there too, then run llmos up again (docs/cluster.md).")


def _read(path: Path) -> str:
    try:
        return path.read_text().split()[0]
    except (OSError, IndexError):
        return ""
