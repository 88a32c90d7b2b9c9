"""What the control plane answers, as typed records: built from the REST API's JSON (keys a newer
daemon adds are ignored), back to that JSON with `to_dict()`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Attempt", "Deployment", "Job", "JobDetails", "LogChunk", "Replica", "Transition"]

T = TypeVar("T")


def _pick(cls: type[T], data: dict[str, Any], **nested: Any) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names}, **nested)


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Job(_Record):
    """A job as `llmos jobs ls` lists it. `placement` holds the `cores` and `gpus` it runs on and, in
    cluster mode, each worker's `nodes` (Ray node ids) and `addresses`."""

    id: int
    name: str
    kind: str
    state: str  # QUEUED, STARTING, RUNNING, SUCCEEDED, FAILED, CANCELLED, PREEMPTED
    owner: str = ""
    project: str = ""
    priority: str = "normal"
    workers: int = 1
    cpus: float = 1
    memory_gb: float = 0.0
    gpus: int = 0
    max_retries: int = 0
    attempt: int = 0
    failures: int = 0
    submit_s: float = 0.0
    updated_s: float = 0.0
    placement: dict[str, list[int] | list[str]] | None = None
    reason: str | None = None
    run_dir: str | None = None
    exit_code: int | None = None

    @property
    def done(self) -> bool:
        return self.state in ("SUCCEEDED", "FAILED", "CANCELLED")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return _pick(cls, data)


@dataclass(frozen=True)
class Transition(_Record):
    at_s: float
    to: str
    attempt: int
    reason: str
    from_state: str | None = None


@dataclass(frozen=True)
class Attempt(_Record):
    number: int
    started_s: float
    ended_s: float | None = None
    exit_code: int | None = None
    outcome: str | None = None
    pid: int | None = None
    placement: dict[str, Any] | None = None


@dataclass(frozen=True)
class JobDetails(Job):
    """One job with its resolved spec, every state change, its attempts and its log files."""

    spec: dict[str, Any] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)  # {name, size}
    # a pipeline's stages, in spec order: {name, action, needs, state, job_id, job_state, model, reason, ...}
    stages: list[dict[str, Any]] = field(default_factory=list)
    # a sweep's study and trials: {study, metric, direction, trials: [{number, job_id, state, params, value}], ...}
    sweep: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobDetails:
        moves = [_pick(Transition, {**t, "from_state": t.get("from")}) for t in data.get("transitions", [])]
        tries = [_pick(Attempt, a) for a in data.get("attempts", [])]
        rest = {k: v for k, v in data.items() if k not in ("transitions", "attempts")}
        return _pick(cls, rest, transitions=moves, attempts=tries)


@dataclass(frozen=True)
class LogChunk(_Record):
    """New text of one log file (`attempt-1/worker-0.log`); `files` is how many the job has."""

    file: str
    text: str
    files: int


@dataclass(frozen=True)
class Replica(_Record):
    id: str
    pid: int
    port: int
    version: str
    state: str  # starting, ready, unhealthy, draining
    cores: list[int] = field(default_factory=list)
    url: str = ""  # where the front reaches it: http://127.0.0.1:PORT, or its node's address on a Ray cluster
    node: str = ""  # its Ray node's id (cluster mode)


@dataclass(frozen=True)
class Deployment(_Record):
    """A deployment: `url` is the one address clients call; replicas come and go behind it."""

    name: str
    model: str = ""
    model_version: str = ""
    url: str = ""
    desired: int = 0
    ready: int = 0
    min: int = 0
    max: int = 0
    owner: str = ""
    scaling: str = ""
    waiting: int = 0
    rollout: str | None = None
    events: list[str] = field(default_factory=list)
    replicas: list[Replica] = field(default_factory=list)
    rolled: bool = False  # set on the answer to a deploy that rolled an existing deployment
    # The latest canary: state (watching, promoted, rolled_back), step, steps, percent, verdict, figures
    canary: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        replicas = [_pick(Replica, r) for r in data.get("replicas", [])]
        return _pick(cls, {k: v for k, v in data.items() if k != "replicas"}, replicas=replicas)
