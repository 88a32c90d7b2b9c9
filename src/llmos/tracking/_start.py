"""`start_run`: find or create the experiment, start or resume the run, record what was run."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmos import __version__, paths
from llmos.errors import TrackingError
from llmos.tracking._params import flatten
from llmos.tracking._store import client as store_client
from llmos.tracking._store import is_local_store, is_server, mlflow_errors, resolve_uri
from llmos.tracking._tracker import NullTracker, Tracker

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from llmos.spec import TrackingSpec

__all__ = ["start_run"]

_log = logging.getLogger(__name__)
_GIT_TIMEOUT_S = 5.0


def start_run(cfg: TrackingSpec, *, run_name: str, job: dict, tags: dict[str, str],
              resume_run_id: str | None = None) -> Tracker | NullTracker:
    """Start (or, given `resume_run_id`, continue) the MLflow run of a job.

    Logs `job` as dotted params and as `job.json`, sets `tags` plus llmos.version, host and
    git_commit, and samples system metrics when `cfg.system_metrics`. `cfg.enabled = False`
    gives a NullTracker.
    """
    if not cfg.enabled:
        return NullTracker()
    uri = resolve_uri(cfg.uri)
    client = store_client(uri)
    import mlflow

    # Global as well: MLflow's system-metrics monitor and any fluent mlflow.* call read it.
    mlflow.set_tracking_uri(uri)
    with mlflow_errors(uri):
        all_tags = {**_default_tags(), **tags}
        if resume_run_id:
            run = _resume(client, uri, resume_run_id)
        else:
            run = client.create_run(_experiment_id(client, uri, cfg.experiment), run_name=run_name)
        if is_server(uri) and is_local_store(run.info.artifact_uri):
            _warn_unshared_artifacts(uri, run.info.artifact_uri)
        monitor = None
        if cfg.system_metrics:
            monitor = _system_monitor(run.info.run_id, uri, resumed=bool(resume_run_id))
        tracker = Tracker(client, run_id=run.info.run_id, experiment_id=run.info.experiment_id,
                          artifact_uri=run.info.artifact_uri, tracking_uri=uri, monitor=monitor)
    try:
        tracker.set_tags(all_tags)
        _log_job(tracker, run, job)
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one worth reporting
            tracker.finish("FAILED")
        raise
    return tracker


def _experiment_id(client: MlflowClient, uri: str, name: str) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None and exp.lifecycle_stage == "deleted":
        raise TrackingError(
            f"experiment '{name}' was deleted in {uri}.",
            hint=f"Restore it (mlflow experiments restore --experiment-id {exp.experiment_id}) "
                 "or set tracking.experiment to another name.")
    if exp is not None:
        return exp.experiment_id
    # A local store would otherwise put artifacts in ./mlruns of whatever folder we run from.
    location = None
    if is_local_store(uri):
        location = (paths.artifacts_dir() / re.sub(r"[^\w.-]", "_", name)).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another worker created it just now
            raise
        return client.get_experiment_by_name(name).experiment_id


def _warn_unshared_artifacts(uri: str, artifact_uri: str) -> None:
    # Such a server hands out a path and each client writes its own disk: a model logged on one
    # node is then missing on the next unless that path is storage every node mounts.
    _log.warning("the MLflow server at %s keeps this run's artifacts at %s, a path each machine writes on its own "
                 "disk: other machines see the logged model only if every one mounts that path. Start the server "
                 "with --serve-artifacts (artifacts then go over HTTP as mlflow-artifacts:) or an object-store "
                 "--default-artifact-root.", uri, artifact_uri)


def _resume(client: MlflowClient, uri: str, run_id: str) -> Run:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise TrackingError(f"cannot resume run {run_id}: it is not in {uri}.",
                            hint="Point LLMOS_TRACKING_URI at the store that holds it, "
                                 "or start a new run (drop the resume).") from exc
    client.update_run(run_id, status="RUNNING")
    return run


def _log_job(tracker: Tracker, run: Run, job: dict[str, Any]) -> None:
    params, text = flatten(job), json.dumps(job, indent=2, sort_keys=True, default=str) + "\n"
    old = run.data.params
    if not old:
        tracker.log_params(params)
        tracker.log_text(text, "job.json")
        return
    # MLflow never changes a logged param, so a resumed run keeps its first values and gets the
    # job it resumed with as a separate artifact, with the changed keys named in a tag.
    tracker.log_params({k: v for k, v in params.items() if k not in old})
    changed = sorted(k for k, v in params.items() if k in old and old[k] != v)
    if changed:
        _log.warning("resumed run %s keeps its first values of %s", run.info.run_id, ", ".join(changed))
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        tracker.log_text(text, f"resumes/{stamp}/job.json")
        tracker.set_tags({"llmos.resume_changed_params": ",".join(changed)})


def _default_tags() -> dict[str, str]:
    tags = {"llmos.version": __version__, "host": socket.gethostname()}
    commit = _git_commit()  # the user's code: the checkout the job runs from
    if commit:
        tags["git_commit"] = commit
    code = _git_commit(Path(__file__).parent)  # llmos itself, when installed from a checkout
    if code:
        tags["llmos.git_commit"] = code
    return tags


def _git_commit(folder: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=folder,
                             timeout=_GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
    if out.returncode != 0:  # not a git checkout
        return None
    return out.stdout.strip() or None


def _system_monitor(run_id: str, uri: str, *, resumed: bool) -> Any:
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    # Its start/stop INFO lines would land in the middle of the training output.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    try:
        monitor = SystemMetricsMonitor(run_id, resume_logging=resumed, tracking_uri=uri)
        monitor.start()
    except Exception as exc:  # system metrics are a nice-to-have; the run goes on without them
        _log.warning("system metrics are off: %s", exc)
        return None
    return monitor
