"""Where llmos keeps its state: `LLMOS_HOME` (default `~/.llmos`) and what lives under it."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["artifacts_dir", "held_cores_file", "home", "runs_dir", "tracking_uri"]


def home() -> Path:
    """The llmos home folder, created on first use."""
    root = _home_path()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _home_path() -> Path:
    return Path(os.environ.get("LLMOS_HOME", "~/.llmos")).expanduser().resolve()


def runs_dir() -> Path:
    """Default parent folder of run outputs (checkpoints, resolved spec, logs)."""
    path = home() / "runs"
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


def held_cores_file(*, create: bool = True) -> Path:
    """Written by a running daemon: the cores its jobs and replicas hold, so that a process
    started by hand beside it keeps off them (llmos._threads reads it)."""
    return (home() if create else _home_path()) / "control" / "held-cores.json"
