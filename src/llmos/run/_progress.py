"""Progress of a training run on rank 0: a live bar in a terminal, plain lines in a log file."""

from __future__ import annotations

import sys

__all__ = ["Progress"]


class Progress:
    def __init__(self, total_steps: int, *, start: int = 0, enabled: bool = True) -> None:
        self.total, self.enabled = total_steps, enabled
        self._bar = None
        self._fields = ""
        if enabled and sys.stdout.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
            self._task = self._bar.add_task("train", total=total_steps, completed=start, info="")
            self._bar.start()

    def advance(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, info=self._fields)

    def update(self, step: int, **values: float) -> None:
        """New figures for the bar (or, in a log file, one line per logging window)."""
        if not self.enabled:
            return
        self._fields = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
        if self._bar is None:
            print(f"step {step}/{self.total}  {self._fields}", flush=True)

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
