"""`llmos compress` end to end: a registered tiny parent, two recipes through the real CLI, a real
MLflow store in tmp_path; children registered with lineage, the gate moving the alias, the
report logged, the parent untouched; bad input refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration._util import llmos

pytestmark = pytest.mark.slow

# Short measurements on one thread: a tiny model gains nothing from a second one, and two that wait
# on each other are several times slower on a busy 2-core machine.
FAST_REPORT = ["report.latency_runs=5", "report.throughput_batches=2", "report.warmup=1", "report.compile=never",
               "report.num_threads=1", "report.runtime.num_threads=1", 'report.runtime.compile="off"']


def _register_parent(llmos_home: Path, folder: Path) -> None:
    """A tiny classifier registered as reviews/1 @candidate, the way `llmos train` registers one."""
    import torch

    from llmos.models import build, save_trained
    from llmos.registry import register_model
    from llmos.spec import TrackingSpec
    from llmos.tracking import start_run

    torch.manual_seed(0)
    built = build("tiny-bert", "classification", label_names=["negative", "positive"])
    save_trained(built.model, built.tokenizer, folder, task="classification", base="tiny-bert",
                 label_names=["negative", "positive"], max_length=32)
    with start_run(TrackingSpec(system_metrics=False), run_name="parent", job={}, tags={}) as tracker:
        uri = tracker.log_model_dir(folder)
        register_model(name="reviews", run_id=tracker.run_id, artifact_uri=uri, alias="candidate",
                       tags={"recipe": "train"})


@pytest.mark.timeout(600)
def test_compress_registers_children_and_gates_the_alias(tmp_path: Path, llmos_home: Path,
                                                         sentiment_csv: tuple[Path, Path]) -> None:
    from mlflow.tracking import MlflowClient

    _register_parent(llmos_home, tmp_path / "parent")
    client = MlflowClient(f"sqlite:///{llmos_home / 'mlflow.db'}")
    parent_before = client.get_model_version("reviews", "1")

    # tiny-bert is mostly embeddings: int8 of its Linear layers alone barely shrinks it, ONNX int8 does.
    out = llmos("compress", "reviews@candidate", "--recipe", "int8:embeddings=false",
                "--recipe", "onnx-int8:per_channel=false",
                "--eval", str(sentiment_csv[1]), "--gate", "max_size_ratio=0.6,max_metric_drop=50",
                "--alias", "small", "--output", str(tmp_path / "work"), *FAST_REPORT, timeout_s=500).stdout
    assert "registered reviews/2  int8:embeddings=False  (failed the gate: size ratio" in out
    assert "registered reviews/3  onnx-int8:per_channel=False  (passed the gate)" in out
    assert "reviews@small -> version 3" in out and "llmos models show reviews@small" in out

    report = json.loads((tmp_path / "work" / "report.json").read_text())
    assert report["metric"] == "accuracy" and report["parent"]["ref"] == "reviews/1"
    int8, onnx = report["children"]
    assert int8["measured"]["format"] == "torchao-int8" and onnx["measured"]["format"] == "onnx-int8"
    for row in (report["parent"], int8, onnx):
        m = row["measured"]
        assert m["throughput"] > 0 and 0 < m["latency_p50_ms"] <= m["latency_p95_ms"] and m["params"] > 0
        assert m["size_mb"] > 0 and m["peak_rss_mb"] > 0 and 0 <= m["metrics"]["accuracy"] <= 1
        # the gate's figures are the served ones; the fixed-length figure stays beside them
        assert m["speed_from"] == "served" and m["throughput"] == m["served"]["throughput"]
        assert m["fixed_length"]["throughput"] > 0 and m["served"]["runtime"]["threads"] == 1
    assert int8["measured"]["served"]["runtime"]["name"] == "torch"
    assert onnx["measured"]["served"]["runtime"]["name"] == "onnx"
    assert (tmp_path / "work" / "pareto.png").stat().st_size > 10_000

    failed, passed = client.get_model_version("reviews", "2"), client.get_model_version("reviews", "3")
    assert str(client.get_model_version_by_alias("reviews", "small").version) == "3"
    assert failed.tags["gate"] == "failed" and "max_size_ratio 0.6" in failed.tags["gate_reason"]
    assert passed.tags["gate"] == "passed"
    for version, recipe in ((failed, "int8"), (passed, "onnx-int8")):
        assert version.tags["parent"] == "reviews/1" and version.tags["recipe"] == recipe
        assert len(version.tags["data_hash"]) == 64 and version.tags["eval_data"] == str(sentiment_csv[1])
    assert failed.run_id == passed.run_id  # one compression run made both
    assert json.loads(passed.tags["recipe_params"]) == {"per_channel": False, "optimize": True}

    run = client.get_run(failed.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["llmos.parent"] == "reviews/1"
    assert run.data.metrics["child/onnx-int8.per_channel-False/gate_passed"] == 1.0
    assert {a.path for a in client.list_artifacts(run.info.run_id, "report")} == {"report/report.json",
                                                                                  "report/pareto.png"}
    # the parent version is untouched: same tags, alias still there
    parent_after = client.get_model_version("reviews", "1")
    assert parent_after.tags == parent_before.tags and "candidate" in parent_after.aliases

    # a registered child loads back through the registry, verified, in ONNX Runtime
    from llmos.registry import load

    assert type(load("reviews@small").model).__name__ == "OnnxModel"


@pytest.mark.timeout(300)
def test_bad_input_is_refused_before_any_work(tmp_path: Path, llmos_home: Path,
                                              sentiment_csv: tuple[Path, Path]) -> None:
    _register_parent(llmos_home, tmp_path / "parent")
    bad = llmos("compress", "reviews@candidate", "--recipe", "int9", "--eval", str(sentiment_csv[1]), check=False)
    assert bad.returncode == 2 and "did you mean 'int8'" in bad.stderr and "Traceback" not in bad.stderr

    bad = llmos("compress", "reviews/1", "--recipe", "int4-weight", "--recipe", "int8",
                "--output", str(tmp_path / "never"), check=False)
    assert bad.returncode == 2
    assert "int4-weight" in bad.stderr and "classification" in bad.stderr and "--eval" in bad.stderr
    assert not (tmp_path / "never").exists()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{llmos_home / 'mlflow.db'}")
    assert [str(v.version) for v in client.search_model_versions("name = 'reviews'")] == ["1"]
