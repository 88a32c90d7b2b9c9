"""The control plane's configuration: `LLMOS_HOME/control.yaml` (optional), then `llmos up` flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmos.errors import SpecError

__all__ = ["ControlConfig", "load_config"]


class ControlConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: Annotated[str, Field(description="address the REST API binds to; keep 127.0.0.1 unless "
                                           "other machines must reach it")] = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535, description="REST API port; 0 picks a free one")] = 8470
    db: Annotated[str | None, Field(description=(
        "state database URL: sqlite:///PATH or postgresql://USER@HOST:PORT/DB (default $LLMOS_DB); null: SQLite under "
        "LLMOS_HOME. Its password comes from $LLMOS_DB_PASSWORD or db_password_file and is never written to a "
        "file by llmos"))] = None
    db_password_file: Annotated[str | None, Field(description=(
        "a file (mode 0600) holding the PostgreSQL password, when neither the URL nor $LLMOS_DB_PASSWORD has "
        "it"))] = None
    policy: Annotated[Literal["fifo", "priority", "fair", "full"], Field(
        description="scheduling policy preset (see llmos.scheduler)")] = "full"
    interval_s: Annotated[float, Field(gt=0, le=60, description=(
        "scheduling interval; the loop also runs at once on a submission or a process exit"))] = 0.5
    grace_s: Annotated[float, Field(gt=0, description=(
        "time a stopped job gets to checkpoint after SIGTERM before SIGKILL"))] = 30.0
    max_retries: Annotated[int, Field(ge=0, description="default retries of a failed job")] = 2
    max_body_bytes: Annotated[int, Field(gt=0, le=2**31, description=(
        "largest REST request body the control API reads; larger ones are refused with 413"))] = 1_000_000
    retry_base_s: Annotated[float, Field(ge=0, description="first retry delay; doubles each failure")] = 2.0
    retry_max_s: Annotated[float, Field(ge=0, description="longest retry delay")] = 300.0
    cpus: Annotated[int | None, Field(gt=0, description=(
        "use only this many of the cores this process may run on; null: all of them"))] = None
    reserve_cpus: Annotated[int, Field(ge=0, description="cores kept back for the system")] = 0
    memory_gb: Annotated[float | None, Field(gt=0, description="memory to schedule; null: the machine's")] = None
    reserve_memory_gb: Annotated[float, Field(ge=0, description="memory kept back for the system")] = 0.0
    gpus: Annotated[list[int] | None, Field(description=(
        "GPU indices (as nvidia-smi numbers them) jobs may use; null: every GPU found"))] = None
    ray: Annotated[str | None, Field(description=(
        "a Ray cluster to run jobs on, HEAD:6379 (cluster mode, docs/cluster.md); null: this machine only"))] = None
    storage: Annotated[str | None, Field(description=(
        "with ray: a folder every node sees at this same path (run folders, checkpoints, logs, models)"))] = None
    tracking: Annotated[str | None, Field(description=(
        "MLflow tracking server every job and deployment logs and registers through, e.g. http://mlflow:5000; "
        "null: SQLite under LLMOS_HOME (under storage in cluster mode)"))] = None
    isolation: Annotated[Literal["auto", "users", "sandbox", "none", "trusted"], Field(description=(
        "how jobs are kept from the control plane's state: users (root daemon: a user per project), sandbox "
        "(namespaces), none (refuses non-admin tokens), trusted (off, for one trusted team); auto: the best that "
        "works (docs/security.md)"))] = "auto"
    tls_cert: Annotated[str | None, Field(description=(
        "PEM certificate (chain) the REST API serves HTTPS with; null with a non-loopback host: a self-signed "
        "one made under LLMOS_HOME/control/tls"))] = None
    tls_key: Annotated[str | None, Field(description="the private key of tls_cert (PEM, mode 0600)")] = None
    insecure_http: Annotated[bool, Field(description=(
        "serve plain HTTP on a non-loopback host (tokens cross the network readable); warned at start and in "
        "llmos status"))] = False

    @model_validator(mode="after")
    def _cluster_needs_storage(self) -> ControlConfig:
        if self.ray and not self.storage:
            raise ValueError("ray needs storage: a folder every node sees at the same path (--storage /shared/llmos)")
        if self.storage and not self.ray:
            raise ValueError("storage is for cluster mode; give --ray HEAD:6379 too, or drop --storage")
        return self


def load_config(file: Path | None = None, **overrides: Any) -> ControlConfig:
    """Read `file` (default `LLMOS_HOME/control.yaml` when it exists) and apply non-None overrides."""
    import yaml

    from llmos.paths import home

    path = file or home() / "control.yaml"
    raw: dict[str, Any] = {}
    if file is not None and not path.is_file():
        raise SpecError(f"configuration file '{path}' does not exist.", hint="Check the path given to --config.")
    if path.is_file():
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SpecError(f"{path} must hold one mapping (key: value lines).")
        raw.update(loaded)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    if raw.get("db") is None and os.environ.get("LLMOS_DB"):
        raw["db"] = os.environ["LLMOS_DB"]  # a URL with a password stays out of shell history and files
    try:
        return ControlConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in e["loc"]) or "(config)", e["msg"]) for e in exc.errors()]
        raise SpecError(f"the control plane configuration ({path}) has {exc.error_count()} problem(s):",
                        problems=problems, hint="Fix the keys above in the file or the `llmos up` flags.") from None
