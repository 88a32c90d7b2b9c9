"""One canary as the controller runs it: its step, the totals the step is judged against, its verdict.

The controller owns the decisions' effects (which replicas run, what the front is told); this
keeps the canary's own state: the step and when it began (on the controller's clock), the front's
per-revision totals at that moment (a step's figures are what changed since), and the latest
verdict. A front that was replaced starts its totals from zero: the step's baseline is then taken
again from the new front's first report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from llmos.deploy._canary import CanaryFigures
from llmos.deploy._routes import FrontReport
from llmos.deploy._split import Split
from llmos.deploy._status import CanaryStatus
from llmos.deploy._version_figures import VersionCounts, VersionFigures, window
from llmos.spec import CanarySpec

__all__ = ["CanaryRun"]

State = Literal["watching", "promoted", "rolled_back"]


@dataclass
class CanaryRun:
    stable: str  # the revision serving when the canary began
    canary: str  # the new revision
    spec: CanarySpec
    step: int = 0
    state: State = "watching"
    verdict: str = "starting the new version's replicas"
    step_started_s: float | None = None  # None until the first tick after the step began
    _baseline: dict[str, VersionCounts] = field(default_factory=dict)
    _baseline_pid: int | None = None
    _figures: CanaryFigures | None = None

    @property
    def watching(self) -> bool:
        return self.state == "watching"

    @property
    def weight(self) -> float:
        """The new version's share of requests now."""
        if self.state == "watching":
            return self.spec.steps[self.step] / 100
        return 1.0 if self.state == "promoted" else 0.0

    def split(self) -> Split:
        return Split(self.stable, self.canary, self.weight, self.spec.mirror_fraction)

    def begin_step(self, step: int) -> None:
        self.step, self.step_started_s, self._baseline_pid = step, None, None

    def observe(self, report: FrontReport | None, now: float, start_failures: int) -> CanaryFigures:
        """The current step's figures from the front's latest report."""
        if self.step_started_s is None:
            self.step_started_s = now
        if report is not None and report.pid != self._baseline_pid:  # the step begins, or a new front
            self._baseline = {rev: _copy(c) for rev, c in report.versions.items()}
            self._baseline_pid = report.pid
        versions = report.versions if report is not None and report.pid == self._baseline_pid else {}
        self._figures = CanaryFigures(window(self._baseline.get(self.canary), versions.get(self.canary)),
                                      window(self._baseline.get(self.stable), versions.get(self.stable)),
                                      now - self.step_started_s, start_failures)
        return self._figures

    def saved(self) -> dict[str, Any]:
        """What a restarted daemon needs to resume it: the revisions, the step, the spec."""
        return {"stable": self.stable, "canary": self.canary, "step": self.step,
                "spec": self.spec.model_dump(mode="json")}

    @staticmethod
    def resumed(saved: dict[str, Any], stable: str) -> CanaryRun | None:
        """The canary a previous daemon saved, at the step it was at (its clock starts again), if
        it was trying a new version against `stable`, the revision this daemon serves."""
        if saved.get("stable") != stable:
            return None
        spec = CanarySpec.model_validate(saved["spec"])
        step = min(int(saved["step"]), len(spec.steps) - 1)
        return CanaryRun(stable, str(saved["canary"]), spec, step, verdict="resumed after a restart")

    def end(self, state: State, verdict: str) -> None:
        self.state, self.verdict = state, verdict

    def status(self) -> CanaryStatus:
        figures = self._figures
        shown = {} if figures is None else {"new": _shown(figures.canary), "current": _shown(figures.stable)}
        return CanaryStatus(self.stable, self.canary, self.state, self.step + 1, list(self.spec.steps),
                            round(self.weight * 100, 3), self.verdict, shown)


def _copy(c: VersionCounts) -> VersionCounts:
    return VersionCounts(c.requests, c.errors, list(c.buckets), c.compared, c.differed)


def _shown(f: VersionFigures) -> dict[str, object]:
    return {**asdict(f), "error_rate": round(f.error_rate, 4), "disagreement": round(f.disagreement, 4)}
