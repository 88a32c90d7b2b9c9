"""Where llmos keeps its state: `LLMOS_HOME` (default `~/.llmos`) and what lives under it."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["artifacts_dir", "held_cores_file", "home", "models_dir", "private_file", "project_dir", "runs_dir",
           "tracking_uri"]


def home() -> Path:
    """The llmos home folder, created on first use, 0700 (the control plane's daemon opens it to
    0711 when jobs run as other users: see llmos.control._isolation)."""
    root = _home_path()
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        root.chmod(0o700)  # mkdir's mode is cut by the umask; this one is meant
    return root


def private_file(path: Path, text: str) -> None:
    """Write `path` readable by its owner only (0600 from the moment it exists), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def project_dir(project: str) -> Path:
    """A project's own folder, `projects/PROJECT` in the home: its jobs' HOME (and, under
    isolation, theirs alone)."""
    return home() / "projects" / project


def _home_path() -> Path:
    return Path(os.environ.get("LLMOS_HOME", "~/.llmos")).expanduser().resolve()


def storage() -> Path | None:
    """The folder every node of a cluster sees (`llmos up --storage`, passed to the daemon and its
    workers as LLMOS_STORAGE); None on one machine, where everything lives in the home."""
    root = os.environ.get("LLMOS_STORAGE")
    return Path(root).expanduser().resolve() if root else None


def runs_dir() -> Path:
    """Default parent folder of run outputs (checkpoints, resolved spec, logs): `LLMOS_RUNS` (an
    isolated job's: its project's folder), else on the shared storage in cluster mode, else in the home."""
    env = os.environ.get("LLMOS_RUNS")
    path = Path(env) if env else (storage() or home()) / "runs"
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
