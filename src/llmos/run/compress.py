"""A `kind: compress` job under the control plane: `python -m llmos.run attempt-N/job.json`.

set-up (threads = the job's cores, a fresh work folder) → the compression stage → exit code.
Compression keeps no checkpoints, so a SIGTERM stops it at once (exit 75: requeued, and the
next attempt starts over) unless it comes while the children are being registered: that last,
short stage finishes first and the job ends as done (exit 0), so a stopped job has registered all
its children or none, and a rerun never registers a second set.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from llmos.run._signals import EXIT_PREEMPTED

if TYPE_CHECKING:
    from llmos.spec import CompressJob

__all__ = ["StopOrHold", "Stopped", "compress_command", "fresh_output", "run_compress"]


class Stopped(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT; a BaseException so no `except Exception` eats it."""


class StopOrHold:
    """SIGTERM or SIGINT raises `Stopped` at once, except inside `hold()`, after which no stop raises:
    what is left once the children are registered is seconds of bookkeeping, and the job is done."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.stopped = False  # `Stopped` was raised: the job ends unfinished, with nothing registered
        self._holding = False
        self._done = False

    def install(self) -> StopOrHold:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self._holding = True
        try:
            yield
        finally:
            self._holding, self._done = False, True

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        first = self.signal is None
        self.signal = signum
        if first and not (self._holding or self._done):
            self.stopped = True
            raise Stopped(signum)


def compress_command(job: CompressJob, folder: Path) -> tuple[list[str], dict[str, str], Path]:
    """(argv, extra environment, working folder) of an attempt whose folder is `folder`."""
    job_file = folder / "job.json"
    job_file.write_text(job.model_dump_json(by_alias=True, indent=2))
    return [sys.executable, "-m", "llmos.run", str(job_file)], {}, folder


def fresh_output(output: Path, now_s: float | None = None) -> Path | None:
    """Move a non-empty `output` (an earlier attempt's work) aside, so this attempt starts over; nothing
    is deleted. Returns where it went, or None."""
    if not output.is_dir() or not any(output.iterdir()):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now_s))
    aside, n = output.with_name(f"{output.name}.attempt-{stamp}"), 1
    while aside.exists():
        n += 1
        aside = output.with_name(f"{output.name}.attempt-{stamp}-{n}")
    output.rename(aside)
    return aside


def run_compress(job: CompressJob) -> int:
    """Run the compression stage; 0 when done, EXIT_PREEMPTED when stopped before registering."""
    stop = StopOrHold().install()
    try:
        from llmos.compress import compress  # which sizes its threads by llmos._threads' rule

        if job.output is not None and (aside := fresh_output(Path(job.output))) is not None:
            _say(f"{job.output} held an earlier attempt's work, moved to {aside}; starting over")
        result = compress(job, note=_say, hold=stop.hold)
    except BaseException:
        if not stop.stopped:  # a failure, or one while registering: the control plane retries or fails it
            raise
        _say(f"stopped by signal {stop.signal} before registering anything; the next attempt starts over")
        return EXIT_PREEMPTED
    _report(result)
    return 0


def _report(result: Any) -> None:
    alias = result.report["alias"]
    for child in result.report["children"]:
        verdict = "passed the gate" if child["gate"]["passed"] else f"failed the gate: {child['gate']['reason']}"
        _say(f"registered {result.registered_name}/{child['registered']}  {child['label']}  ({verdict})")
    if alias["name"]:
        _say(f"{result.registered_name}@{alias['name']} -> {alias['version'] or 'not moved (no child passed)'}")
    _say(f"report: {result.report_file}\nMLflow run: {result.run_id}")


def _say(text: str) -> None:
    print(text, flush=True)

