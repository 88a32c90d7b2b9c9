"""What a deployment reports: plain dataclasses, JSON-ready through `to_dict()`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["CanaryStatus", "DeploymentStatus", "ReplicaStatus", "RolloutStatus"]

ReplicaState = Literal["starting", "ready", "unhealthy", "draining"]


@dataclass(frozen=True)
class ReplicaStatus:
    replica_id: str
    pid: int
    port: int
    model_version: str  # the pinned registry version, e.g. sentiment/3
    revision: str  # model version + a digest of the replica's settings
    state: ReplicaState
    outstanding: int  # requests the front router has in flight on it
    served: int  # requests the front router ever sent it
    log_path: str
    host: str = "127.0.0.1"  # where it listens: loopback locally, its node's address on a Ray cluster


@dataclass(frozen=True)
class RolloutStatus:
    from_revisions: list[str]
    to_revision: str
    state: Literal["rolling", "done", "failed"]
    reason: str = ""


@dataclass(frozen=True)
class CanaryStatus:
    from_revision: str  # the version that served when the canary began
    to_revision: str  # the new one
    state: Literal["watching", "promoted", "rolled_back"]
    step: int  # 1-based, into `steps`
    steps: list[float]  # percent of the traffic at each step
    percent: float  # the new version's share now
    verdict: str  # the latest decision and why, with the figures
    # "new" and "current" -> requests, errors, error_rate, p95_ms, compared, differed, disagreement (this step)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploymentStatus:
    name: str
    front_url: str
    model: str  # the reference the deployment was asked to serve, e.g. sentiment@production
    model_version: str  # what it resolved to
    revision: str
    desired: int
    min_replicas: int
    max_replicas: int
    ready: int
    scaling_reason: str
    replicas: list[ReplicaStatus]
    rollout: RolloutStatus | None = None
    events: list[str] = field(default_factory=list)  # the latest changes, oldest first
    events_total: int = 0  # events ever recorded: tells a follower how many of `events` are new
    front_pid: int | None = None  # the front router's process; None while it is being started again
    canary: CanaryStatus | None = None  # the latest canary, while it runs and after it ended
    # Replicas of the target revision that exited in a row, none of them ready since: a version that
    # cannot load shows here long before any timeout.
    start_failures: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
