"""start_run / Tracker against a real MLflow SQLite store in a temporary LLMOS_HOME."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from llmos import __version__
from llmos.errors import TrackingError
from llmos.spec import TrackingSpec
from llmos.tracking import NullTracker, Tracker, start_run

JOB = {"name": "demo", "train": {"lr": 5e-5, "betas": [0.9, 0.999], "max_steps": None}}
QUIET = TrackingSpec(system_metrics=False)


def _client(tracker: Tracker) -> MlflowClient:
    return MlflowClient(tracker.tracking_uri)


def test_run_records_job_tags_and_local_artifacts(tmp_path: Path, monkeypatch, llmos_home: Path) -> None:
    monkeypatch.chdir(tmp_path)
    tracker = start_run(QUIET, run_name="first", job=JOB, tags={"data_hash": "abc123"})
    tracker.finish()
    assert isinstance(tracker, Tracker)
    assert tracker.tracking_uri == f"sqlite:///{llmos_home / 'mlflow.db'}"
    run = _client(tracker).get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "first"
    assert run.data.params == {"name": "demo", "train.lr": "5e-05", "train.betas": "[0.9, 0.999]",
                               "train.max_steps": "null"}
    tags = run.data.tags
    assert tags["data_hash"] == "abc123"
    assert tags["llmos.version"] == __version__
    assert tags["host"]
    assert "git_commit" not in tags  # tmp_path is not a git checkout
    assert run.info.artifact_uri.startswith((llmos_home / "mlartifacts").as_uri())
    job_json = Path(run.info.artifact_uri.removeprefix("file://")) / "job.json"
    assert json.loads(job_json.read_text()) == JOB
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_commit_tag_inside_a_checkout(tmp_path: Path, monkeypatch) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"], check=True, env=env)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    monkeypatch.chdir(tmp_path)
    with start_run(QUIET, run_name="git", job={}, tags={}) as tracker:
        pass
    assert _client(tracker).get_run(tracker.run_id).data.tags["git_commit"] == head


def test_log_metrics_is_cheap_and_arrives_in_step_order() -> None:
    tracker = start_run(QUIET, run_name="metrics", job={}, tags={})
    start = time.perf_counter()
    for step in range(10_000):
        tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    caller_s = time.perf_counter() - start
    tracker.log_metrics({"eval/accuracy": 0.5, "bad name!": 1.0}, step=10_000)
    tracker.finish()
    # The loop pays for a deque append, not for a database write (measured: ~5-20 ms here; writing
    # 10,000 points synchronously to SQLite takes many seconds, so 1 s separates the two on a busy box).
    assert caller_s < 1.0, f"10,000 log_metrics calls took {caller_s * 1000:.1f} ms on the caller"
    client = _client(tracker)
    history = sorted(client.get_metric_history(tracker.run_id, "loss"), key=lambda m: m.step)
    assert [m.step for m in history] == list(range(10_000))
    assert [m.value for m in history] == [1.0 / (s + 1) for s in range(10_000)]
    # Timestamps follow call order, so MLflow's own ordering agrees with the step order.
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(history))
    metrics = client.get_run(tracker.run_id).data.metrics
    assert metrics["loss"] == pytest.approx(1 / 10_000)
    assert metrics["eval/accuracy"] == 0.5
    assert "bad name!" not in metrics  # dropped with a warning instead of failing every batch


def test_metrics_flush_in_the_background_without_finish() -> None:
    tracker = start_run(QUIET, run_name="live", job={}, tags={})
    tracker.log_metrics({"loss": 2.0}, step=1)
    deadline = time.monotonic() + 10
    while "loss" not in _client(tracker).get_run(tracker.run_id).data.metrics:
        assert time.monotonic() < deadline, "metrics were not flushed within 10 s"
        time.sleep(0.1)
    tracker.finish()


def test_resume_continues_the_same_run(tmp_path: Path, make_model_dir) -> None:
    first = start_run(QUIET, run_name="resumable", job=JOB, tags={})
    first.log_metrics({"loss": 1.0}, step=1)
    first.finish("KILLED")
    changed = {**JOB, "train": {**JOB["train"], "max_steps": 50}, "checkpoint": {"keep": 2}}
    second = start_run(QUIET, run_name="resumable", job=changed, tags={}, resume_run_id=first.run_id)
    assert second.run_id == first.run_id
    assert second.experiment_id == first.experiment_id
    client = _client(second)
    assert client.get_run(second.run_id).info.status == "RUNNING"
    second.log_metrics({"loss": 0.5}, step=2)
    second.finish()
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    # MLflow never changes a param: the first value stays, the change is named, new keys are added.
    assert run.data.params["train.max_steps"] == "null"
    assert run.data.params["checkpoint.keep"] == "2"
    assert run.data.tags["llmos.resume_changed_params"] == "train.max_steps"
    resumes = [a.path for a in client.list_artifacts(run.info.run_id, "resumes")]
    assert len(resumes) == 1


def test_resume_of_unknown_run_is_a_tracking_error() -> None:
    with pytest.raises(TrackingError, match="cannot resume run 0123"):
        start_run(QUIET, run_name="x", job={}, tags={}, resume_run_id="0123456789abcdef0123456789abcdef")


def test_context_manager_marks_failures() -> None:
    with pytest.raises(RuntimeError), start_run(QUIET, run_name="boom", job={}, tags={}) as tracker:
        raise RuntimeError("boom")
    assert _client(tracker).get_run(tracker.run_id).info.status == "FAILED"
    tracker.finish()  # a second finish is a no-op
    with pytest.raises(ValueError, match="FINISHED, FAILED, KILLED"):
        tracker.finish("DONE")


def test_log_model_dir_writes_manifest_and_logs_folder(tmp_path: Path, make_model_dir) -> None:
    model = make_model_dir(tmp_path / "model")
    tracker = start_run(QUIET, run_name="model", job={}, tags={})
    tracker.log_params({"extra": {"nested": 1}})
    tracker.set_tags({"stage": "final"})
    note = tmp_path / "notes.txt"
    note.write_text("hi")
    tracker.log_artifact(note, "docs")
    uri = tracker.log_model_dir(model)
    tracker.finish()
    assert uri == f"{tracker.artifact_uri}/model"
    assert (model / "manifest.json").is_file()
    logged = Path(uri.removeprefix("file://"))
    assert sorted(p.relative_to(logged).as_posix() for p in logged.rglob("*") if p.is_file()) == [
        "config.json", "manifest.json", "model.safetensors", "tokenizer/vocab.txt"]
    run = _client(tracker).get_run(tracker.run_id)
    assert run.data.params["extra.nested"] == "1"
    assert run.data.tags["stage"] == "final"
    assert (Path(tracker.artifact_uri.removeprefix("file://")) / "docs" / "notes.txt").read_text() == "hi"


def test_system_metrics_are_sampled(monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    tracker = start_run(TrackingSpec(system_metrics=True), run_name="sys", job={}, tags={})
    time.sleep(0.7)
    tracker.finish()
    metrics = _client(tracker).get_run(tracker.run_id).data.metrics
    assert any(k.startswith("system/cpu_utilization") for k in metrics), sorted(metrics)


def test_a_run_shorter_than_one_sampling_interval_still_has_system_metrics() -> None:
    """MLflow's monitor logs a point only at the end of each interval (10 s by default) and drops
    the samples of the interval a stop cuts short; the tracker logs them when the run ends."""
    tracker = start_run(TrackingSpec(system_metrics=True), run_name="short", job={}, tags={})
    time.sleep(1.0)  # the monitor has taken its first sample (it samples first, then waits 10 s)
    tracker.finish()
    metrics = _client(tracker).get_run(tracker.run_id).data.metrics
    assert any(k.startswith("system/cpu_utilization") for k in metrics), sorted(metrics)


def test_disabled_tracking_is_a_null_tracker(tmp_path: Path, llmos_home: Path) -> None:
    tracker = start_run(TrackingSpec(enabled=False, uri=f"sqlite:///{tmp_path / 'never.db'}"),
                        run_name="off", job=JOB, tags={})
    assert isinstance(tracker, NullTracker)
    assert tracker.run_id == ""
    with tracker:
        tracker.log_metrics({"loss": 1.0}, step=0)
        tracker.log_params({"a": 1})
        tracker.set_tags({"b": "c"})
        tracker.log_artifact(tmp_path)
        assert tracker.log_model_dir(tmp_path) == ""
    tracker.finish("FAILED")
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize("uri", ["foo://nowhere", "http://127.0.0.1:9"])
def test_unreachable_store_is_a_tracking_error(uri: str) -> None:
    start = time.monotonic()
    with pytest.raises(TrackingError) as err:
        start_run(TrackingSpec(uri=uri, system_metrics=False), run_name="x", job={}, tags={})
    assert "LLMOS_TRACKING_URI" in (err.value.hint or "")
    assert time.monotonic() - start < 10  # no minutes of MLflow HTTP retries


def test_importing_tracking_and_registry_does_not_import_mlflow() -> None:
    code = ("import sys, llmos.tracking, llmos.registry, llmos.cli.models; "
            "sys.exit('mlflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
