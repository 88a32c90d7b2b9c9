"""What one replica is: its revision, its job file, its command line and its environment.

A revision is the pinned model version plus a digest of the replica's settings, so a roll that
only changes (say) batching still replaces every replica, and replicas started later by the
autoscaler or a restart serve exactly what the others serve, even after the alias moved.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from llmos.spec import ServeJob

__all__ = ["REPLICA_HOST", "pinned_job", "rebind_replica_job", "registry_version", "replica_argv", "replica_env",
           "revision_of", "write_replica_job"]

# Replicas listen on loopback only: the front router is the deployment's one public address. (A
# replica that a spawn starts on another machine listens on that machine's cluster address.)
REPLICA_HOST = "127.0.0.1"


def registry_version(ref: str, tracking_uri: str | None) -> str:
    """`ref` (NAME@ALIAS, NAME/N or NAME) pinned to the version it names now, as NAME/N."""
    from llmos.registry import parse_ref, show

    parsed = parse_ref(ref)
    details = show(parsed, tracking_uri)
    versions = [int(v.version) for v in details.versions]
    version = versions[0] if parsed.alias or parsed.version else max(versions)
    return f"{parsed.name}/{version}"


def pinned_job(job: ServeJob, version: str) -> ServeJob:
    """The job a replica of `version` runs; its port is filled in when the replica starts."""
    return job.model_copy(update={"model": version})


def revision_of(job: ServeJob) -> str:
    # Replica counts, autoscaling and how a new version is brought in change how many replicas run
    # and when, not what one runs.
    settings = job.model_dump(mode="json", exclude={"replicas", "autoscale", "canary"})
    settings["server"].pop("port", None)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return f"{job.model}#{digest}"


def write_replica_job(job: ServeJob, port: int, path: Path) -> Path:
    server = job.server.model_copy(update={"host": REPLICA_HOST, "port": port})
    update: dict[str, object] = {"server": server}
    if job.runtime.num_threads is None:
        # A replica's default is every usable core, which N replicas on one host would each take:
        # hold it to the cores it asked for (resources.cpus).
        update["runtime"] = job.runtime.model_copy(update={"num_threads": job.resources.cpus})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(job.model_copy(update=update).model_dump_json(indent=2))
    return path


def rebind_replica_job(path: Path, host: str, port: int) -> None:
    """Where the replica of this job file listens, as the spawn that starts it elsewhere found it."""
    job = ServeJob.model_validate_json(path.read_text())
    server = job.server.model_copy(update={"host": host, "port": port})
    path.write_text(job.model_copy(update={"server": server}).model_dump_json(indent=2))


def replica_argv(job_file: Path) -> list[str]:
    # The same entrypoint as `llmos serve --spec`, without the CLI's imports in between.
    return [sys.executable, "-m", "llmos.serve", str(job_file)]


def replica_env(deployment: str, replica_id: str, job: ServeJob) -> dict[str, str]:
    env = dict(os.environ)
    env["LLMOS_DEPLOYMENT"] = deployment
    env["LLMOS_REPLICA"] = replica_id
    # One intra-op thread per core the replica owns, so replicas sharing a host do not oversubscribe
    # it; a spawn that pins cores may set it again.
    env["OMP_NUM_THREADS"] = str(job.resources.cpus)
    return env
