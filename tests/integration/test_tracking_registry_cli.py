"""Train through the real CLI with real MLflow in tmp_path, read the records back with the MLflow
client, and drive the registry commands; then the quickstart's path on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration._util import llmos, write_job

pytestmark = pytest.mark.slow


def test_train_is_tracked_and_registered(tmp_path: Path, llmos_home: Path, sentiment_csv: tuple[Path, Path],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    # MLflow samples system metrics every 10 s by default: longer than this tiny run.
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")

    train, test = sentiment_csv
    # One training thread, as in test_tasks: a tiny model runs no faster on two, and slower under load.
    job = write_job(tmp_path, f"""
name: reviews
output: {tmp_path / 'run'}
model: {{name: tiny-bert, max_length: 32}}
data: {{train: {train}, eval: {test}}}
train: {{epochs: 2, batch_size: 8, lr: 0.005, log_every_steps: 5, num_threads: 1}}
checkpoint: {{every_steps: 20}}
tracking: {{experiment: it}}
register: {{name: reviews, alias: candidate}}
""")
    out = llmos("train", str(job)).stdout
    assert "registered" in out and "llmos models show reviews@candidate" in out

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    client = MlflowClient(f"sqlite:///{llmos_home / 'mlflow.db'}")
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.005" and run.data.params["model.name"] == "tiny-bert"
    assert run.data.tags["llmos.data_hash"] == summary["data_hash"]
    assert "llmos.version" in run.data.tags and "host" in run.data.tags
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in losses] == list(range(5, 51, 5))
    assert run.data.metrics["eval/accuracy"] == pytest.approx(summary["metrics"]["accuracy"])
    assert any(k.startswith("system/") for k in run.data.metrics), "MLflow system metrics are logged"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"job.json", "model", "summary.json"} <= artifacts
    model_files = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/model.safetensors", "model/manifest.json", "model/llmos_model.json"} <= model_files

    version = client.get_model_version_by_alias("reviews", "candidate")
    assert version.run_id == run.info.run_id
    assert version.tags["data_hash"] == summary["data_hash"] and version.tags["base_model"] == "tiny-bert"

    # a second version, the alias moved to it, then rolled back
    llmos("train", str(job), "--fresh")
    assert str(client.get_model_version_by_alias("reviews", "candidate").version) == "2"
    assert "reviews" in llmos("models", "ls").stdout
    assert "data_hash" in llmos("models", "show", "reviews@candidate").stdout
    llmos("models", "rollback", "reviews", "candidate")
    assert str(client.get_model_version_by_alias("reviews", "candidate").version) == "1"
    bad = llmos("models", "show", "nope@candidate", check=False)
    assert bad.returncode != 0 and "llmos models ls" in bad.stderr and "Traceback" not in bad.stderr

    # a registered version loads back, verified, with the same predictions as the run's own folder
    from llmos.registry import load

    built = load("reviews@candidate")
    assert built.model.config.id2label == {0: "negative", 1: "positive"}
    assert built.base == "tiny-bert"


def test_quickstart_path_on_a_tiny_model(llmos_home: Path) -> None:
    out = llmos("quickstart", "--model", "tiny-bert", "--max-steps", "6").stdout
    assert "fine-tuning tiny-bert on support-intents" in out  # the model it trains, not the default's name
    assert "quickstart version 1 @candidate" in out
    assert "llmos models show quickstart@candidate" in out
    assert (llmos_home / "runs" / "quickstart" / "summary.json").is_file()
    # again: a new version, the old run folder kept aside
    llmos("quickstart", "--model", "tiny-bert", "--max-steps", "2")
    assert len(list((llmos_home / "runs").glob("quickstart.*"))) == 1


def test_bad_spec_is_one_clear_message_without_traceback(tmp_path: Path) -> None:
    job = write_job(tmp_path, "data: {train: missing.csv}\ntrain: {lr: fast, epochs: -1}\n")
    result = llmos("train", str(job), check=False)
    assert result.returncode == 2
    assert "train.lr: expected a number, got 'fast'" in result.stderr
    assert "train.epochs" in result.stderr and "Traceback" not in result.stderr


def test_missing_data_file_is_reported_before_training(tmp_path: Path) -> None:
    job = write_job(tmp_path, f"output: {tmp_path / 'r'}\nmodel: {{name: tiny-bert}}\ndata: {{train: nothere.csv}}\n"
                              "tracking: {enabled: false}\n")
    result = llmos("train", str(job), check=False)
    assert result.returncode != 0
    assert "nothere.csv" in result.stderr and "Traceback" not in result.stderr
