"""`Tracker`: one MLflow run seen from a training loop; `NullTracker`: the same calls, no effect."""

from __future__ import annotations

import atexit
import contextlib
import logging
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from llmos.tracking._manifest import write_manifest
from llmos.tracking._params import MAX_KEY_CHARS, MAX_TAG_CHARS, flatten, truncate
from llmos.tracking._queue import MetricQueue
from llmos.tracking._store import mlflow_errors

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["NullTracker", "Tracker"]

_log = logging.getLogger(__name__)
_STATUSES = ("FINISHED", "FAILED", "KILLED")
_PER_BATCH = 100  # MLflow's MAX_PARAMS_TAGS_PER_BATCH


class Tracker:
    """A started MLflow run. Build it with `start_run`; end it with `finish` or a `with` block."""

    def __init__(self, client: MlflowClient, *, run_id: str, experiment_id: str, artifact_uri: str,
                 tracking_uri: str, monitor: Any = None, flush_interval_s: float = 1.0) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.artifact_uri = artifact_uri
        self.tracking_uri = tracking_uri
        self._client = client
        self._monitor = monitor  # MLflow's SystemMetricsMonitor, or None
        self._queue = MetricQueue(self._send_metrics, flush_interval_s=flush_interval_s)
        self._finished = False
        # A loop that dies without finish() would otherwise lose the last second of metrics.
        atexit.register(self._at_exit)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Queue metrics for `step`; returns at once (a background thread writes them)."""
        self._queue.put(metrics, step)

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params now; nested dicts become dotted keys. A key keeps its first value."""
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten(params).items()]
        with mlflow_errors(self.tracking_uri, "logging params"):
            for i in range(0, len(items), _PER_BATCH):
                self._client.log_batch(self.run_id, params=items[i:i + _PER_BATCH])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(truncate(k, MAX_KEY_CHARS), truncate(str(v), MAX_TAG_CHARS)) for k, v in tags.items()]
        with mlflow_errors(self.tracking_uri, "setting tags"):
            for i in range(0, len(items), _PER_BATCH):
                self._client.log_batch(self.run_id, tags=items[i:i + _PER_BATCH])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Log a file, or a folder's contents, under `artifact_path` of the run."""
        path = Path(path)
        with mlflow_errors(self.tracking_uri, f"logging artifact {path}"):
            if path.is_dir():
                self._client.log_artifacts(self.run_id, str(path), artifact_path)
            else:
                self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        with mlflow_errors(self.tracking_uri, f"logging {artifact_file}"):
            self._client.log_text(self.run_id, text, artifact_file)

    def log_model_dir(self, model_dir: Path, artifact_path: str = "model") -> str:
        """Write `manifest.json` into `model_dir`, log the folder, return its artifact URI
        (the `artifact_uri` that `llmos.registry.register_model` takes)."""
        write_manifest(Path(model_dir))
        self.log_artifact(Path(model_dir), artifact_path)
        return f"{self.artifact_uri.rstrip('/')}/{artifact_path.strip('/')}"

    def finish(self, status: str = "FINISHED") -> None:
        """Flush metrics, stop system metrics and end the run with FINISHED, FAILED or KILLED."""
        if status not in _STATUSES:
            raise ValueError(f"status must be one of {', '.join(_STATUSES)}, got {status!r}")
        if self._finished:
            return
        self._finished = True
        atexit.unregister(self._at_exit)
        if self._monitor is not None:
            _stop_system_metrics(self._monitor)
        with mlflow_errors(self.tracking_uri, "ending the run"):
            try:
                self._queue.close()
            finally:  # end the run even when the last metrics could not be written
                self._client.set_terminated(self.run_id, status=status)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.finish("FINISHED")
        else:
            self.finish("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")

    def _send_metrics(self, metrics: list[Any]) -> None:
        self._client.log_batch(self.run_id, metrics=metrics)

    def _at_exit(self) -> None:
        with contextlib.suppress(Exception):  # the interpreter is exiting; nothing left to tell
            self.finish("FAILED")


class NullTracker:
    """Accepts every Tracker call and records nothing: tracking off, or a rank other than 0."""

    run_id = ""
    experiment_id = ""
    artifact_uri = ""
    tracking_uri = ""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_model_dir(self, model_dir: Path, artifact_path: str = "model") -> str:
        return ""

    def finish(self, status: str = "FINISHED") -> None:
        pass

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _stop_system_metrics(monitor: Any) -> None:
    """Stop MLflow's monitor, then log what it sampled since its last point: its loop drops the
    samples of an interval that the stop cuts short, so a run shorter than one sampling interval
    (10 s by default) would have no system metrics at all."""
    monitor.finish()
    try:
        tail = monitor.aggregate_metrics()
        if tail:
            monitor.publish_metrics(tail)
            monitor.mlflow_logger.flush()
    except Exception as exc:  # system metrics are a nice-to-have: never fail the run for them
        _log.warning("the last system metrics were not logged: %s", exc)
