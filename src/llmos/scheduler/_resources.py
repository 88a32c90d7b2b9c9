"""Resource vectors, priority classes and quotas: the units every other module counts in."""

from __future__ import annotations

from dataclasses import dataclass

from llmos.scheduler._errors import SchedulerError

__all__ = ["EPS", "PRIORITY_CLASSES", "ZERO", "Quota", "Resources", "priority_rank"]

# CPU counts and memory are floats (0.5 CPU, 7.5 GB): compare with a tolerance so that
# sums of fractions never make a node look one ulp over-committed.
EPS = 1e-9

# Strict between classes: any job of a higher class is considered before every job of a lower one.
PRIORITY_CLASSES: dict[str, int] = {"low": 0, "normal": 1, "high": 2, "critical": 3}


def priority_rank(value: str | int) -> int:
    """Map a class name (`high`) or its rank (`2`) to the rank; raise on anything else."""
    if isinstance(value, int) and value in PRIORITY_CLASSES.values():
        return value
    text = str(value).strip().lower()
    if text in PRIORITY_CLASSES:
        return PRIORITY_CLASSES[text]
    if text.isdigit() and int(text) in PRIORITY_CLASSES.values():
        return int(text)
    names = ", ".join(PRIORITY_CLASSES)
    raise SchedulerError(f"unknown priority class {value!r}.", hint=f"Use one of: {names} (or 0-3).")


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of CPUs, memory and GPUs (a worker's request, a job's total, an owner's usage)."""

    cpus: float = 0.0
    memory_gb: float = 0.0
    gpus: float = 0.0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpus + other.cpus, self.memory_gb + other.memory_gb, self.gpus + other.gpus)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpus - other.cpus, self.memory_gb - other.memory_gb, self.gpus - other.gpus)

    def times(self, k: float) -> Resources:
        return Resources(self.cpus * k, self.memory_gb * k, self.gpus * k)

    def fits_in(self, other: Resources) -> bool:
        return (self.cpus <= other.cpus + EPS and self.memory_gb <= other.memory_gb + EPS
                and self.gpus <= other.gpus + EPS)

    def dominant_share(self, total: Resources) -> float:
        """The largest fraction of `total` this uses on any one resource (DRF's dominant share)."""
        share = 0.0
        if total.cpus > 0:
            share = self.cpus / total.cpus
        if total.memory_gb > 0:
            share = max(share, self.memory_gb / total.memory_gb)
        if total.gpus > 0:
            share = max(share, self.gpus / total.gpus)
        return share


ZERO = Resources()


@dataclass(frozen=True, slots=True)
class Quota:
    """Per-resource limits; `None` leaves that resource unconstrained."""

    cpus: float | None = None
    memory_gb: float | None = None
    gpus: float | None = None

    def is_set(self) -> bool:
        return self.cpus is not None or self.memory_gb is not None or self.gpus is not None

    def admits(self, amount: Resources) -> bool:
        """True when `amount` stays within every limit that is set."""
        return ((self.cpus is None or amount.cpus <= self.cpus + EPS)
                and (self.memory_gb is None or amount.memory_gb <= self.memory_gb + EPS)
                and (self.gpus is None or amount.gpus <= self.gpus + EPS))

    def exceeded_by(self, amount: Resources) -> bool:
        """True when `amount` is over some limit that is set (the owner is borrowing)."""
        return ((self.cpus is not None and amount.cpus > self.cpus + EPS)
                or (self.memory_gb is not None and amount.memory_gb > self.memory_gb + EPS)
                or (self.gpus is not None and amount.gpus > self.gpus + EPS))

    def covers(self, amount: Resources) -> bool:
        """True when `amount` needs at least one resource that this quota sets."""
        return ((self.cpus is not None and amount.cpus > 0)
                or (self.memory_gb is not None and amount.memory_gb > 0)
                or (self.gpus is not None and amount.gpus > 0))
