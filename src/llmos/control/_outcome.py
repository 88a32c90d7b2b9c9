"""What a job becomes when its process exits: a pure function of its state, exit code and history."""

from __future__ import annotations

from dataclasses import dataclass

from llmos.control._states import JobState

__all__ = ["EXIT_PREEMPTED", "Outcome", "after_exit", "retry_delay_s"]

EXIT_PREEMPTED = 75  # the recipe's "stopped with a checkpoint" (EX_TEMPFAIL); see llmos.run


@dataclass(frozen=True)
class Outcome:
    state: JobState | None  # None: already final (a cancelled job's processes have now exited)
    reason: str
    failed: bool = False  # counts against max_retries
    not_before_s: float = 0.0


def retry_delay_s(failures: int, base_s: float, max_s: float) -> float:
    """Exponential backoff: base, 2 x base, 4 x base, ... capped at `max_s`."""
    return min(max_s, base_s * 2 ** max(0, failures - 1))


def after_exit(state: JobState, exit_code: int | None, attempt: int, failures: int, max_retries: int,
               now_s: float, base_s: float, max_s: float, restarts: bool = False) -> Outcome:
    """`exit_code` None means the process vanished without recording one (SIGKILL, out of memory).
    `restarts` is the job kind's (llmos.executor.KINDS): a kind that keeps no checkpoints (compress)
    reruns from the start, and the reasons say so."""
    how = "without an exit status (killed?)" if exit_code is None else (
        f"by signal {-exit_code}" if exit_code < 0 else f"with exit code {exit_code}")
    if state == JobState.CANCELLED:
        return Outcome(None, f"cancelled; its processes exited {how}")
    if exit_code == 0:
        note = " (while being preempted)" if state == JobState.PREEMPTED else ""
        return Outcome(JobState.SUCCEEDED, f"attempt {attempt} finished{note}")
    resumes = "it starts over (compression keeps no checkpoints)" if restarts else \
        "it resumes from its latest checkpoint"
    if state == JobState.PREEMPTED:
        return Outcome(JobState.QUEUED, f"preempted: attempt {attempt} stopped {how}; requeued, {resumes}")
    if exit_code == EXIT_PREEMPTED:  # stopped by a SIGTERM from outside the scheduler: not a failure
        stopped = "before registering anything" if restarts else "with a checkpoint"
        return Outcome(JobState.QUEUED, f"attempt {attempt} stopped {stopped} (exit 75); requeued, {resumes}")
    failures += 1
    if failures <= max_retries:
        delay = retry_delay_s(failures, base_s, max_s)
        rerun = "starting over" if restarts else "from its latest checkpoint"
        return Outcome(JobState.QUEUED, f"attempt {attempt} failed {how}; retry {failures} of {max_retries} "
                                        f"in {delay:g} s, {rerun}", True, now_s + delay)
    return Outcome(JobState.FAILED, f"attempt {attempt} failed {how}; no retries left ({max_retries} allowed)", True)
