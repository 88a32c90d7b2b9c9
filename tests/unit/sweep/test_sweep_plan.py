"""The sweep's pure decisions, on literals: which trials start and stop, what the pruner is told,
when the sweep is over and which trial is best."""

from __future__ import annotations

from llmos.sweep import TrialView, best_trial, new_reports, plan


def T(number: int, state: str, prune: bool = False, value: float | None = None) -> TrialView:
    return TrialView(number, state, prune=prune, value=value)


def test_a_new_sweep_fills_the_parallel_cap() -> None:
    step = plan([], total=16, max_parallel=3, max_failed=3)
    assert (step.start, step.stop, step.done, step.failed) == (3, (), False, None)


def test_room_is_the_cap_minus_active_trials_and_never_past_the_total() -> None:
    trials = [T(0, "complete", value=0.8), T(1, "running"), T(2, "waiting")]
    assert plan(trials, total=16, max_parallel=3, max_failed=3).start == 1
    assert plan(trials, total=3, max_parallel=8, max_failed=3).start == 0
    assert plan(trials, total=4, max_parallel=8, max_failed=3).start == 1


def test_a_trial_the_pruner_condemns_is_stopped_and_a_finished_one_is_not() -> None:
    trials = [T(0, "running", prune=True), T(1, "running"), T(2, "complete", prune=True, value=0.5)]
    assert plan(trials, total=3, max_parallel=2, max_failed=3).stop == (0,)


def test_done_once_all_asked_for_have_ended() -> None:
    trials = [T(0, "complete", value=0.7), T(1, "pruned"), T(2, "failed")]
    step = plan(trials, total=3, max_parallel=2, max_failed=3)
    assert step.done and step.failed is None and step.start == 0
    assert step.finished == {"complete": 1, "failed": 1, "pruned": 1}
    assert not plan([*trials[:2], T(2, "running")], total=3, max_parallel=2, max_failed=3).done


def test_too_many_failures_stop_asking_and_fail_once_the_rest_ended() -> None:
    trials = [T(0, "failed"), T(1, "failed"), T(2, "running")]
    step = plan(trials, total=10, max_parallel=4, max_failed=1)
    assert step.start == 0 and not step.done
    step = plan(trials[:2], total=10, max_parallel=4, max_failed=1)
    assert step.done and step.failed == "2 trials failed (max_failed is 1)"


def test_a_sweep_where_no_trial_completed_has_failed() -> None:
    step = plan([T(0, "pruned"), T(1, "pruned")], total=2, max_parallel=2, max_failed=3)
    assert step.done and step.failed == "no trial completed (every one was pruned)"


def test_a_cancelled_sweep_stops_its_running_trials_and_starts_none() -> None:
    trials = [T(0, "running"), T(1, "waiting"), T(2, "complete", value=0.9)]
    step = plan(trials, total=10, max_parallel=4, max_failed=3, cancelled=True)
    assert step.start == 0 and step.stop == (0,) and not step.done and step.failed == "cancelled"
    assert plan(trials[2:], total=10, max_parallel=4, max_failed=3, cancelled=True).done


def test_only_new_steps_of_the_metric_are_reported_once_each() -> None:
    evals = [(8, {"accuracy": 0.6, "loss": 0.7}), (16, {"accuracy": 0.7}), (16, {"accuracy": 0.75}),
             (24, {"loss": 0.5}), (4, {"accuracy": 0.55})]
    assert new_reports(evals, "accuracy", seen_steps=[8]) == [(4, 0.55), (16, 0.7)]
    assert new_reports(evals, "accuracy", seen_steps=[4, 8, 16]) == []
    assert new_reports([], "accuracy", seen_steps=[]) == []


def test_the_best_trial_follows_the_direction_and_breaks_ties_by_number() -> None:
    trials = [T(0, "complete", value=0.8), T(1, "complete", value=0.9), T(2, "pruned", value=0.95),
              T(3, "complete", value=0.9), T(4, "running")]
    assert best_trial(trials, "maximize").number == 1  # type: ignore[union-attr]
    assert best_trial(trials, "minimize").number == 0  # type: ignore[union-attr]
    assert best_trial([T(0, "pruned", value=0.1)], "maximize") is None
