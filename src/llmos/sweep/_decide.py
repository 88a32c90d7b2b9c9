"""The sweep's decisions as pure functions of its trials' states: which trials to start and stop,
which evaluations the pruner has not seen yet, whether the sweep is over, which trial is best.

The drivers (the daemon's `control._sweeps`, the foreground `llmos sweep run`) read the states,
call these, and carry the answer out; unit tests call them with literals.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["ACTIVE", "FINISHED", "Plan", "TrialView", "best_trial", "new_reports", "plan"]

# A trial's state as the sweep sees it (its job's state folded in):
#   waiting (asked, no job yet) · running (queued or running job) · complete · pruned · failed
ACTIVE = frozenset({"waiting", "running"})
FINISHED = frozenset({"complete", "pruned", "failed"})


@dataclass(frozen=True)
class TrialView:
    number: int
    state: str
    prune: bool = False  # the pruner's verdict on its latest evaluation
    value: float | None = None  # the final metric of a complete trial


@dataclass(frozen=True)
class Plan:
    start: int = 0  # new trials to ask the sampler for
    stop: tuple[int, ...] = ()  # running trials to stop as pruned
    done: bool = False  # nothing runs and nothing more will start
    failed: str | None = None  # why the sweep failed, when it did
    finished: dict[str, int] = field(default_factory=dict)  # trials per final state


def plan(trials: Sequence[TrialView], *, total: int, max_parallel: int, max_failed: int,
         cancelled: bool = False) -> Plan:
    """What to do next. Pruned trials stop first; new ones fill the room up to `max_parallel`
    until `total` have been asked for; more than `max_failed` failures stop the asking. A
    cancelled sweep starts nothing and stops every active trial."""
    counts = {s: sum(1 for t in trials if t.state == s) for s in sorted(FINISHED)}
    active = [t for t in trials if t.state in ACTIVE]
    if cancelled:
        return Plan(stop=tuple(t.number for t in active if t.state == "running"), done=not active,
                    failed="cancelled", finished=counts)
    stop = tuple(t.number for t in active if t.state == "running" and t.prune)
    too_many = counts["failed"] > max_failed
    room = 0 if too_many else max(0, min(max_parallel - len(active), total - len(trials)))
    done = not active and room == 0
    failed = None
    if too_many:
        failed = f"{counts['failed']} trials failed (max_failed is {max_failed})"
    elif done and counts["complete"] == 0:
        failed = "no trial completed" + (" (every one was pruned)" if counts["pruned"] else "")
    return Plan(start=room, stop=stop, done=done, failed=failed if done else None, finished=counts)


def new_reports(evals: Iterable[tuple[int, dict[str, float]]], metric: str,
                seen_steps: Iterable[int]) -> list[tuple[int, float]]:
    """The (step, value) pairs of `metric` the pruner has not been told yet, in step order; a
    resumed trial evaluates some steps twice, and only the first value of a step counts."""
    seen, out = set(seen_steps), []
    for step, metrics in evals:
        if step in seen or metric not in metrics:
            continue
        seen.add(step)
        out.append((step, float(metrics[metric])))
    return sorted(out)


def best_trial(trials: Iterable[TrialView], direction: str) -> TrialView | None:
    """The complete trial with the best value (the lowest number on a tie)."""
    done = [t for t in trials if t.state == "complete" and t.value is not None]
    if not done:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(done, key=lambda t: (sign * t.value, t.number))  # type: ignore[operator]
