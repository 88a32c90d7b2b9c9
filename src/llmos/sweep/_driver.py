"""One round of a sweep, shared by the daemon and the foreground: fold the trials' runs into the
study (new evaluations, ends), ask the pure `plan` what to do, carry it out.

A `Trials` backend starts and stops trial runs and says how each is doing: the control plane's
(`control._sweeps`: trials are jobs under the scheduler) or the foreground's (`sweep._foreground`:
subprocesses). Everything the round needs is re-read each time, so a driver that restarts goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from llmos.spec import SweepJob, trial_job
from llmos.sweep._decide import Plan, TrialView, best_trial, new_reports, plan
from llmos.sweep._study import Study

__all__ = ["Run", "Trials", "best_of", "one_round", "trial_value"]


@dataclass(frozen=True)
class Run:
    state: str  # running (queued or running), complete, pruned (stopped by the sweep), failed
    run_dir: Path
    why: str = ""  # for a failed run: what happened


class Trials(Protocol):
    def runs(self) -> dict[int, Run]: ...
    def start(self, number: int, job: Any) -> None: ...
    def stop(self, number: int, why: str) -> None: ...


def one_round(sweep: SweepJob, study: Study, trials: Trials, parent: Any, folder: Path,
              cancelled: bool = False, say: Any = print) -> Plan:
    """Bring the study up to date with the runs, then start and stop trials as `plan` says."""
    runs, views = trials.runs(), []
    problem = None
    for number, frozen in sorted(study.trials().items()):
        run = runs.get(number)
        if run is None and cancelled and not frozen.state.is_finished():
            views.append(TrialView(number, "waiting"))  # asked for, never started: not now
            continue
        view, why = _fold(sweep, study, trials, parent, folder, number, frozen, run, say)
        views.append(view)
        problem = problem or why
    halt = problem or ("the sweep was cancelled" if cancelled else None)
    step = plan(views, total=sweep.trials, max_parallel=sweep.max_parallel, max_failed=sweep.max_failed,
                cancelled=halt is not None)
    for number in step.stop:
        trials.stop(number, halt or f"pruned by the sweep's {sweep.pruner.kind} pruner")
        if halt is None:
            study.tell(number, "pruned")
            say(f"trial {number}: pruned")
    if halt is not None:  # every active trial ends as failed, and so does the sweep
        for view in views:
            if view.state in ("running", "waiting"):
                study.tell(view.number, "failed")
        return replace(step, failed=halt, done=True)
    for _ in range(step.start):
        number, values = study.ask()
        _start(sweep, trials, parent, folder, number, values, say)
    return step


def _fold(sweep: SweepJob, study: Study, trials: Trials, parent: Any, folder: Path, number: int, frozen: Any,
          run: Run | None, say: Any) -> tuple[TrialView, str | None]:
    state = frozen.state.name
    if state in ("COMPLETE", "PRUNED", "FAIL"):
        finished = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}[state]
        return TrialView(number, finished, value=frozen.value), None
    if run is None:  # asked for, but its run was never started (the driver stopped in between)
        _start(sweep, trials, parent, folder, number, dict(frozen.params), say)
        return TrialView(number, "running"), None
    if run.state == "running":
        evals = _evals(run.run_dir)
        if evals and all(sweep.metric not in m for _, m in evals):
            return TrialView(number, "running"), (
                f"the trials report no eval metric '{sweep.metric}' (they report {', '.join(evals[-1][1])}): "
                "set metric to one of those")
        reports = new_reports(evals, sweep.metric, frozen.intermediate_values)
        prune = study.report(number, reports) if reports else False
        # A trial that has written its summary has done all its training: stopping it saves nothing,
        # and it is told complete (with its final value) once its process has exited.
        done = (run.run_dir / "summary.json").is_file()
        return TrialView(number, "running", prune=prune and not done), None
    if run.state == "complete":
        # Evaluations since the last round first: later trials are pruned against them at each step.
        reports = new_reports(_evals(run.run_dir), sweep.metric, frozen.intermediate_values)
        if reports:
            study.report(number, reports)
        value = trial_value(run.run_dir, sweep.metric)
        if value is None:
            study.tell(number, "failed")
            say(f"trial {number}: finished without a final '{sweep.metric}' in {run.run_dir / 'summary.json'}")
            return TrialView(number, "failed"), None
        study.tell(number, "complete", value)
        say(f"trial {number}: {sweep.metric} {value:.4f}")
        return TrialView(number, "complete", value=value), None
    study.tell(number, run.state)  # pruned (already told when stopped) or failed
    if run.state == "failed":
        say(f"trial {number}: failed" + (f" ({run.why})" if run.why else ""))
    return TrialView(number, run.state), None


def _start(sweep: SweepJob, trials: Trials, parent: Any, folder: Path, number: int, values: dict[str, Any],
           say: Any) -> None:
    job = trial_job(sweep, number, values, output=str(folder / f"t{number}"))
    parent.child(job, number, values)
    trials.start(number, job)
    say(f"trial {number}: started with " + ", ".join(f"{k}={_short(v)}" for k, v in values.items()))


def _evals(run_dir: Path) -> list[tuple[int, dict[str, float]]]:
    from llmos.run import read_evals

    return read_evals(run_dir)


def trial_value(run_dir: Path, metric: str) -> float | None:
    """A finished trial's final metric, from its summary.json."""
    try:
        value = json.loads((run_dir / "summary.json").read_text())["metrics"][metric]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value)


def best_of(sweep: SweepJob, study: Study, folder: Path) -> dict[str, Any] | None:
    """The best complete trial: number, value, params, run folder and its summary."""
    frozen = study.trials()
    views = [TrialView(n, "complete", value=t.value) for n, t in frozen.items() if t.state.name == "COMPLETE"]
    best = best_trial(views, sweep.direction)
    if best is None:
        return None
    run_dir = folder / f"t{best.number}"
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return {"number": best.number, "value": best.value, "params": dict(frozen[best.number].params),
            "run_dir": str(run_dir), "summary": summary}


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def finish(sweep: SweepJob, study: Study, parent: Any, folder: Path, failed: str | None,
           say: Any = print) -> dict[str, Any]:
    """The sweep's end: register the best trial's model (when asked), close the parent run, and
    return what happened (best trial, registered version, counts)."""
    best = best_of(sweep, study, folder)
    registered = None
    if best is not None and sweep.registration is not None and failed is None:
        registered = _register(sweep, best)
        say(f"registered trial {best['number']} as {registered['name']} version {registered['version']}"
            + (f" (@{registered['alias']})" if registered["alias"] else ""))
    parent.finish(best, failed)
    rows = trial_rows(study, best)
    states = [r["state"] for r in rows]
    return {"name": sweep.name, "metric": sweep.metric, "direction": sweep.direction, "best": best,
            "registered": registered, "failed": failed, "parent_run_id": parent.run_id,
            "counts": {s: states.count(s) for s in sorted(set(states))}, "trials": rows}


def trial_rows(study: Study, best: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every trial as `llmos jobs show` lists them: number, state, params, value (a pruned one's last)."""
    names = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
    rows = []
    for number, t in sorted(study.trials().items()):
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
        rows.append({"number": number, "state": names.get(t.state.name, "running"), "params": dict(t.params),
                     "value": t.value if t.value is not None else last,
                     "best": best is not None and best["number"] == number})
    return rows


def _register(sweep: SweepJob, best: dict[str, Any]) -> dict[str, Any]:
    from llmos.errors import LlmosError
    from llmos.registry import register_model

    summary, reg = best["summary"], sweep.registration
    if not summary.get("artifact_uri"):
        raise LlmosError(f"trial {best['number']} logged no model to MLflow, so it cannot be registered.",
                         hint="Keep base.tracking.log_model true in the sweep spec.")
    version = register_model(name=reg.name, run_id=summary["run_id"], artifact_uri=summary["artifact_uri"],  # type: ignore[union-attr]
                             alias=reg.alias, description=reg.description,  # type: ignore[union-attr]
                             tags={"data_hash": summary.get("data_hash", ""), "base_model": sweep.base.model.name,
                                   "recipe": "sweep", "task": sweep.base.model.task,
                                   "sweep": sweep.name, "trial": str(best["number"])},
                             tracking_uri=sweep.base.tracking.uri)
    return {"name": reg.name, "version": version, "alias": reg.alias}  # type: ignore[union-attr]
