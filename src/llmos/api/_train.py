"""`llmos.train(...)`: a training job in the foreground, as `llmos train` runs it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmos.api._resolve import SpecLike, as_dotted, resolve_job
from llmos.errors import RunFailed

__all__ = ["Registered", "TrainResult", "run_train", "train", "train_job"]


@dataclass(frozen=True)
class Registered:
    """A model version in the registry: `ref` is what `llmos serve` and `llmos models show` take."""

    name: str
    version: str
    alias: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"


@dataclass(frozen=True)
class TrainResult:
    """How a run ended. `status` is `succeeded`, `preempted` (stopped with a checkpoint: run the
    same job again to resume) or `failed` (only from `run_train`; `llmos.train` raises instead)."""

    status: Literal["succeeded", "preempted", "failed"]
    exit_code: int
    run_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)  # the last evaluation's
    steps: int = 0
    wall_s: float = 0.0
    run_id: str | None = None  # the MLflow run
    tracking_uri: str = ""
    registered: Registered | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["run_dir"] = str(self.run_dir)
        if self.registered is not None:
            out["registered"]["ref"] = self.registered.ref
        return out


def train_job(spec: SpecLike, dotted: list[str]) -> Any:
    """The validated `kind: train` job, its data files checked (seconds before the training
    process would find out)."""
    job = resolve_job(spec, "train", dotted, source=str(spec) if not isinstance(spec, dict) else "the spec")
    if getattr(job, "data", None) is not None:
        from llmos.data import check_sources

        check_sources(job.data)
    return job


def run_train(job: Any, *, fresh: bool = False) -> TrainResult:
    """Launch a validated job (its workers are child processes) and wait for it."""
    from llmos.paths import tracking_uri
    from llmos.run import EXIT_PREEMPTED, launch

    launched = launch(job, fresh=fresh)
    uri = tracking_uri(job.tracking.uri)
    summary = launched.summary
    if launched.exit_code == EXIT_PREEMPTED:
        return TrainResult("preempted", launched.exit_code, launched.run_dir, tracking_uri=uri)
    if launched.exit_code != 0 or summary is None:
        return TrainResult("failed", launched.exit_code or 1, launched.run_dir, tracking_uri=uri)
    reg = summary.get("registered")
    return TrainResult(
        "succeeded", 0, launched.run_dir, metrics=dict(summary["metrics"]), steps=summary["steps"],
        wall_s=summary["wall_s"], run_id=summary.get("run_id"), tracking_uri=uri,
        registered=Registered(reg["name"], str(reg["version"]), reg.get("alias")) if reg else None)


def train(spec: SpecLike, *, fresh: bool = False, dotted: Iterable[str] = (), **overrides: Any) -> TrainResult:
    """Run a `kind: train` job in this machine's foreground and return how it ended.

    `spec` is a YAML file, a mapping or a `llmos.spec.TrainJob`; keyword overrides are spec keys
    (`train={"lr": 3e-5}`, `resources={"procs": 2}`), `dotted` takes the command line's form
    (`["train.lr=3e-5"]`). A failed run raises `RunFailed`; a stopped one returns
    `status="preempted"` and resumes when run again."""
    job = train_job(spec, as_dotted(overrides, dotted))
    result = run_train(job, fresh=fresh)
    if result.status == "failed":
        raise RunFailed(f"training failed (exit code {result.exit_code}).", exit_code=result.exit_code,
                        hint=f"Its output is in {result.run_dir}; fix the cause and run it again "
                             "(it resumes from the last checkpoint).")
    return result
