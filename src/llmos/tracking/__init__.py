"""Tracking: every run's params, metrics, system metrics and artifacts in MLflow.

`start_run` returns a `Tracker` whose `log_metrics` only queues (a background thread writes), so
the training loop never waits on the store. Model folders carry a `manifest.json` of sha256 per
file; `verify_manifest` refuses a folder that does not match it. `check_server` tells at once
whether an http(s) tracking URI answers as an MLflow server (every client does it before use; `llmos
up --tracking` can call it at start). MLflow is imported on first use.
"""

from llmos.tracking._manifest import verify_manifest, write_manifest
from llmos.tracking._server import check_server
from llmos.tracking._start import start_run
from llmos.tracking._tracker import NullTracker, Tracker

__all__ = ["NullTracker", "Tracker", "check_server", "start_run", "verify_manifest", "write_manifest"]
