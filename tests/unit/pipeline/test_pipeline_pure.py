"""The pipeline's decisions and verdicts, on literals: what starts next, what a stage yielded."""

from __future__ import annotations

from llmos.pipeline import Progress, advance, bounds_missed, compress_verdict, stage_state_of_job, train_verdict

LINE = {"train": ("PENDING", ()), "compress": ("PENDING", ("train",)), "promote": ("PENDING", ("compress",))}


def _with(**states: str) -> dict:
    return {n: (states.get(n, s), needs) for n, (s, needs) in LINE.items()}


def test_a_stage_starts_once_everything_it_needs_has_succeeded() -> None:
    assert advance(LINE) == Progress(submit=("train",))
    assert advance(_with(train="RUNNING")) == Progress()
    assert advance(_with(train="SUCCEEDED")) == Progress(submit=("compress",))
    both = {"a": ("SUCCEEDED", ()), "b": ("RUNNING", ()), "c": ("PENDING", ("a", "b")), "d": ("PENDING", ("a",))}
    assert advance(both).submit == ("d",)  # c waits for b as well


def test_independent_stages_start_together_and_a_finished_pipeline_succeeds() -> None:
    fan = {"train": ("SUCCEEDED", ()), "int8": ("PENDING", ("train",)), "bf16": ("PENDING", ("train",))}
    assert advance(fan).submit == ("int8", "bf16")
    assert advance(_with(train="SUCCEEDED", compress="SUCCEEDED", promote="SUCCEEDED")).state == "succeeded"


def test_a_failed_stage_stops_what_would_follow_and_fails_the_pipeline_once_nothing_runs() -> None:
    failed = advance(_with(train="SUCCEEDED", compress="FAILED"))
    assert failed == Progress(skip=("promote",), state="failed", failed=("compress",))
    fan = {"a": ("FAILED", ()), "b": ("RUNNING", ()), "c": ("PENDING", ("b",))}
    assert advance(fan) == Progress(skip=("c",), state="running", failed=("a",))  # b is left to finish
    assert advance({"a": ("FAILED", ()), "b": ("SUCCEEDED", ()), "c": ("SKIPPED", ("b",))}).state == "failed"


def test_stage_states_follow_their_jobs_a_retried_job_is_still_running() -> None:
    assert [stage_state_of_job(s) for s in ("QUEUED", "STARTING", "RUNNING", "PREEMPTED")] == ["RUNNING"] * 4
    assert [stage_state_of_job(s) for s in ("SUCCEEDED", "FAILED", "CANCELLED")] == ["SUCCEEDED", "FAILED", "FAILED"]


def test_a_train_stage_yields_the_version_it_registered() -> None:
    ok = train_verdict({"registered": {"name": "intents", "version": "3", "alias": None}, "metrics": {"accuracy": 0.9}})
    assert ok.ok and ok.model == "intents/3" and "accuracy 0.9" in ok.reason
    assert not train_verdict({"metrics": {}}).ok


def _child(label: str, passed: bool, throughput: float, version: str, reasons: list[str]) -> dict:
    return {"label": label, "gate": {"passed": passed, "reasons": reasons}, "measured": {"throughput": throughput},
            "registered": version}


def test_compress_yields_the_fastest_passing_child_or_names_every_bound_missed_with_its_figures() -> None:
    report = {"registered_name": "intents", "children": [
        _child("int8", True, 900.0, "2", []), _child("bf16", True, 1200.0, "3", []),
        _child("onnx-int8", False, 2000.0, "4", ["metric drop 3.20 > max_metric_drop 1"])]}
    verdict = compress_verdict(report)
    assert verdict.ok and verdict.model == "intents/3" and "bf16 passed the gate" in verdict.reason
    report["children"] = [_child("int8", False, 900.0, "2", ["size ratio 0.71 > max_size_ratio 0.5",
                                                             "speedup 0.90x < min_speedup 1.2"])]
    failed = compress_verdict(report)
    assert not failed.ok and failed.model is None
    assert failed.reason == ("gate failed for every child, so nothing is promoted (int8: size ratio 0.71 > "
                             "max_size_ratio 0.5; speedup 0.90x < min_speedup 1.2)")


def test_evaluation_bounds_name_the_metric_the_figure_and_the_bound() -> None:
    metrics = {"accuracy": 0.71, "loss": 0.9}
    assert bounds_missed(metrics, {"accuracy": 0.7}, {"loss": 1.0}) == []
    assert bounds_missed(metrics, {"accuracy": 0.8}, {"loss": 0.5}) == ["accuracy 0.7100 < min 0.8",
                                                                        "loss 0.9000 > max 0.5"]
    assert bounds_missed(metrics, {"f1": 0.5}, {}) == ["no metric 'f1' (the evaluation reports: accuracy, loss)"]
