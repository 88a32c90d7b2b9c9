"""What a simulation records: per-job outcomes, time series, and counters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llmos.scheduler import Resources

__all__ = ["JobOutcome", "Samples", "SimResult"]


@dataclass(slots=True)
class JobOutcome:
    owner: str
    submit_s: float
    gpus: int
    first_start_s: float | None = None
    end_s: float | None = None
    preemptions: int = 0


class Samples:
    """The cluster after each scheduling round: busy GPUs, and GPUs held and waiting per
    owner and priority class (class-aware entitlements need the split); and GPUs allocated per
    owner, which differ from those held only while capacity being freed is claimed (see `add`)."""

    def __init__(self, owners: list[str], classes: list[int]) -> None:
        self.owners = owners
        self.classes = classes
        self.times_s: list[float] = []
        self.busy_gpus: list[float] = []
        self.held_gpus: dict[tuple[str, int], list[float]] = {(o, c): [] for o in owners for c in classes}
        self.waiting_gpus: dict[tuple[str, int], list[float]] = {(o, c): [] for o in owners for c in classes}
        self.allocated_gpus: dict[str, list[float]] = {o: [] for o in owners}

    def add(self, t: float, busy: float, held: Mapping[tuple[int, str], Resources],
            queued: Mapping[tuple[int, str], Resources],
            allocated: Mapping[tuple[int, str], float] | None = None) -> None:
        """Record one instant; `held` and `queued` are keyed by (class, owner), as the queue is.

        `allocated` (GPUs by (class, owner)) is what the round gave each owner when it differs
        from `held`: capacity being freed by checkpointing jobs that a queued job has claimed
        counts for the claimant (see `ClusterState.allocated`); None: the same as `held`.
        """
        self.times_s.append(t)
        self.busy_gpus.append(busy)
        for (o, c), series in self.held_gpus.items():
            r = held.get((c, o))
            series.append(r.gpus if r is not None else 0.0)
        for (o, c), series in self.waiting_gpus.items():
            r = queued.get((c, o))
            series.append(r.gpus if r is not None else 0.0)
        for o, series in self.allocated_gpus.items():
            if allocated is None:
                series.append(sum(self.held_gpus[(o, c)][-1] for c in self.classes))
            else:
                series.append(sum(allocated.get((c, o), 0.0) for c in self.classes))

    def owner_held(self, owner: str, k: int) -> float:
        return sum(self.held_gpus[(owner, c)][k] for c in self.classes)

    def owner_allocated(self, owner: str, k: int) -> float:
        return self.allocated_gpus[owner][k]

    def owner_waiting(self, owner: str, k: int) -> float:
        return sum(self.waiting_gpus[(owner, c)][k] for c in self.classes)


@dataclass
class SimResult:
    policy: str
    priority_classes: bool
    total_gpus: int
    outcomes: dict[str, JobOutcome]
    rejected: list[tuple[str, str]]
    unfinished: list[str]
    samples: Samples
    weights: dict[str, float]
    round_latency_s: list[float]
    round_decisions: list[int]
    preemptions: int
    lost_gpu_s: float
    wall_s: float
    extra: dict = field(default_factory=dict)
