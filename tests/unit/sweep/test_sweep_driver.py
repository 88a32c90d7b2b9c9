"""The round driver against a real Optuna study in SQLite and an in-memory `Trials` backend whose
runs end when the test says: trials start up to the cap, evaluations reach the pruner, a pruned
trial is stopped, a driver that starts over on the same database carries on without starting a
trial twice, a cancelled sweep stops its trials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmos.spec import SweepJob, parse_job
from llmos.sweep import Run, Study, one_round, plan


class Parent:  # tracking off: nothing to nest under
    run_id = None

    def child(self, job: Any, number: int, values: dict) -> None:
        pass


class MemoryTrials:
    def __init__(self) -> None:
        self.jobs: dict[int, Any] = {}
        self.state: dict[int, str] = {}
        self.stops: list[tuple[int, str]] = []

    def runs(self) -> dict[int, Run]:
        return {n: Run(self.state[n], Path(j.output)) for n, j in self.jobs.items()}

    def start(self, number: int, job: Any) -> None:
        assert number not in self.jobs, f"trial {number} started twice"
        Path(job.output).mkdir(parents=True)
        self.jobs[number], self.state[number] = job, "running"

    def stop(self, number: int, why: str) -> None:
        self.stops.append((number, why))
        self.state[number] = "pruned" if why.startswith("pruned") else "failed"

    def evaluate(self, number: int, step: int, loss: float) -> None:
        with (Path(self.jobs[number].output) / "eval.jsonl").open("a") as f:
            f.write(json.dumps({"step": step, "metrics": {"loss": loss}}) + "\n")

    def finish(self, number: int, loss: float) -> None:
        (Path(self.jobs[number].output) / "summary.json").write_text(json.dumps({"metrics": {"loss": loss}}))
        self.state[number] = "complete"


def sweep(tmp_path: Path, **fields: Any) -> SweepJob:
    spec = {"kind": "sweep", "name": "s", "base": {"data": {"train": "/d/a.csv"}, "tracking": {"enabled": False}},
            "params": {"train.lr": {"log_range": [1e-5, 1e-1]}, "train.batch_size": {"range": [8, 32]}},
            "metric": "loss", "direction": "minimize", "trials": 4, "max_parallel": 2, "sampler": "random",
            "pruner": {"kind": "median", "startup_trials": 1}, **fields}
    return parse_job(spec)  # type: ignore[return-value]


def test_trials_start_report_prune_and_resume(tmp_path: Path) -> None:
    job, url, folder = sweep(tmp_path), f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "runs"
    study, trials = Study(job, url, "s"), MemoryTrials()
    step = one_round(job, study, trials, Parent(), folder, say=lambda _: None)
    assert step.start == 2 and sorted(trials.jobs) == [0, 1]
    first = trials.jobs[0]
    assert first.name == "s-t0" and isinstance(first.train.batch_size, int) and 8 <= first.train.batch_size <= 32
    trials.evaluate(0, 4, 0.5)
    trials.finish(0, 0.4)
    trials.evaluate(1, 4, 0.9)  # worse than trial 0 at step 4: the median pruner stops it
    one_round(job, study, trials, Parent(), folder, say=lambda _: None)
    assert trials.stops == [(1, "pruned by the sweep's median pruner")]
    states = {n: t.state.name for n, t in study.trials().items()}
    assert states[0] == "COMPLETE" and states[1] == "PRUNED" and study.trials()[0].value == 0.4
    assert sorted(trials.jobs) == [0, 1, 2]  # trial 1's place went to trial 2 (the cap counts it as ended)

    # A new driver (a restarted daemon) on the same database: the same study, no trial started twice.
    again = Study(job, url, "s")
    trials.finish(2, 0.3)
    one_round(job, again, trials, Parent(), folder, say=lambda _: None)
    assert sorted(trials.jobs) == [0, 1, 2, 3]
    trials.finish(3, 0.35)
    step = one_round(job, again, trials, Parent(), folder, say=lambda _: None)
    assert step.done and step.failed is None and step.finished == {"complete": 3, "failed": 0, "pruned": 1}


def test_a_trial_asked_for_but_never_started_is_started_by_the_next_round(tmp_path: Path) -> None:
    job, folder = sweep(tmp_path, trials=1), tmp_path / "runs"
    study, trials = Study(job, f"sqlite:///{tmp_path / 'db.sqlite'}", "s"), MemoryTrials()
    number, values = study.ask()  # the driver died right after asking
    one_round(job, study, trials, Parent(), folder, say=lambda _: None)
    assert list(trials.jobs) == [number] and trials.jobs[number].train.lr == values["train.lr"]


def test_cancelling_stops_running_trials_and_a_missing_metric_fails_the_sweep(tmp_path: Path) -> None:
    job, folder = sweep(tmp_path), tmp_path / "runs"
    study, trials = Study(job, f"sqlite:///{tmp_path / 'db.sqlite'}", "s"), MemoryTrials()
    one_round(job, study, trials, Parent(), folder, say=lambda _: None)
    step = one_round(job, study, trials, Parent(), folder, cancelled=True, say=lambda _: None)
    assert step.done and step.failed == "the sweep was cancelled"
    assert sorted(n for n, _ in trials.stops) == [0, 1]
    assert {t.state.name for t in study.trials().values()} == {"FAIL"}

    job = sweep(tmp_path, metric="accuracy")
    study, trials = Study(job, f"sqlite:///{tmp_path / 'other.sqlite'}", "s"), MemoryTrials()
    one_round(job, study, trials, Parent(), tmp_path / "other", say=lambda _: None)
    trials.evaluate(0, 4, 0.5)  # reports loss only
    step = one_round(job, study, trials, Parent(), tmp_path / "other", say=lambda _: None)
    assert step.done and "report no eval metric 'accuracy' (they report loss)" in step.failed  # type: ignore[operator]


def test_the_grid_covers_every_combination_once(tmp_path: Path) -> None:
    job = sweep(tmp_path, sampler="grid", trials=4, max_parallel=4,
                params={"train.lr": {"choices": [1e-4, 1e-3]}, "train.batch_size": {"choices": [8, 16]}})
    study, trials = Study(job, f"sqlite:///{tmp_path / 'db.sqlite'}", "s"), MemoryTrials()
    one_round(job, study, trials, Parent(), tmp_path / "runs", say=lambda _: None)
    assert sorted((j.train.lr, j.train.batch_size) for j in trials.jobs.values()) == [
        (1e-4, 8), (1e-4, 16), (1e-3, 8), (1e-3, 16)]
    for n in range(4):
        trials.finish(n, 0.1 * n)
    assert one_round(job, study, trials, Parent(), tmp_path / "runs", say=lambda _: None).done
    assert plan([], total=0, max_parallel=1, max_failed=0).done


def test_a_trial_that_has_finished_training_is_not_pruned_at_its_last_evaluation(tmp_path: Path) -> None:
    job, folder = sweep(tmp_path, trials=2, max_parallel=2), tmp_path / "runs"
    study, trials = Study(job, f"sqlite:///{tmp_path / 'db.sqlite'}", "s"), MemoryTrials()
    one_round(job, study, trials, Parent(), folder, say=lambda _: None)
    trials.evaluate(0, 4, 0.5)
    trials.finish(0, 0.4)
    trials.evaluate(1, 4, 0.9)  # worse than the median at step 4, but its summary is written:
    (Path(trials.jobs[1].output) / "summary.json").write_text(json.dumps({"metrics": {"loss": 0.9}}))
    one_round(job, study, trials, Parent(), folder, say=lambda _: None)  # its process has not exited yet
    assert trials.stops == []
