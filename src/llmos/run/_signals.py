"""Graceful stop on SIGTERM (preemption) and Ctrl-C: finish the step, checkpoint, exit 75."""

from __future__ import annotations

import signal
from types import FrameType

__all__ = ["EXIT_PREEMPTED", "StopRequest"]

# EX_TEMPFAIL from sysexits.h: "try again later" — the scheduler requeues such a job.
EXIT_PREEMPTED = 75


class StopRequest:
    """Set by SIGTERM or SIGINT; the training loop polls it after each optimizer step.

    A second Ctrl-C while stopping raises KeyboardInterrupt at once, for a user who cannot wait.
    """

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def install(self) -> StopRequest:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum
