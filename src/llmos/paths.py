"""Where llmos keeps its state: `LLMOS_HOME` (default `~/.llmos`) and what lives under it."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["artifacts_dir", "held_cores_file", "home", "models_dir", "runs_dir", "tracking_uri"]


def home() -> Path:
    """The llmos home folder, created on first use."""
    root = _home_path()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _home_path() -> Path:
    return Path(os.environ.get("LLMOS_HOME", "~/.llmos")).expanduser().resolve()


def storage() -> Path | None:
    """The folder every node of a cluster sees (`llmos up --storage`, passed to the daemon and its
    workers as LLMOS_STORAGE); None on one machine, where everything lives in the home."""
    root = os.environ.get("LLMOS_STORAGE")
    return Path(root).expanduser().resolve() if root else None


def runs_dir() -> Path:
    """Default parent folder of run outputs (checkpoints, resolved spec, logs): on the shared
    storage in cluster mode, else in the home."""
    path = (storage() or home()) / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Where presets converted from another format are cached (SmolLM2 from GGUF):
    `LLMOS_MODEL_CACHE`, else `models/` in the home. Several homes may share one cache."""
    env = os.environ.get("LLMOS_MODEL_CACHE")
    path = Path(env).expanduser().resolve() if env else home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifacts_dir() -> Path:
    """Local MLflow artifact root."""
    path = home() / "mlartifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def tracking_uri(override: str | None = None) -> str:
    """The MLflow tracking URI: the spec's, else `LLMOS_TRACKING_URI`, else SQLite in the home."""
    if override:
        return override
    env = os.environ.get("LLMOS_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{home() / 'mlflow.db'}"


def jobs_dir() -> Path:
    """The control plane's attempt folders (logs, exit records), one per job: on the shared storage
    in cluster mode (workers on every node write there), else under the home's control folder."""
    shared = storage()
    return shared / "jobs" if shared else home() / "control" / "jobs"


def held_cores_file(*, create: bool = True) -> Path:
    """Written by a running daemon: the cores its jobs and replicas hold, so that a process
    started by hand beside it keeps off them (llmos._threads reads it)."""
    return (home() if create else _home_path()) / "control" / "held-cores.json"
