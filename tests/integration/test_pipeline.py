"""docs/pipelines.md's worked example end to end: under a real daemon that is SIGKILLed while the
train stage runs and started again, and in the foreground with `llmos run`; a gate that fails stops
the pipeline before promotion, naming the bound and the figures."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest
import yaml

from tests.integration._util import llmos
from tests.integration.test_control_plane import client, plane, wait_for  # noqa: F401  (plane: a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
DOC = Path(__file__).parents[2] / "docs" / "pipelines.md"


def _worked_example(folder: Path) -> Path:
    """The spec of docs/pipelines.md beside the bundled data, as the doc tells a reader to set it up."""
    from llmos.data import bundled_dataset_path

    text = DOC.read_text().split("<!-- worked-example:", 1)[1]
    spec = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    folder.mkdir(parents=True, exist_ok=True)
    for csv in bundled_dataset_path().glob("*.csv"):
        shutil.copy(csv, folder)
    (folder / "pipeline.yaml").write_text(spec)
    return folder / "pipeline.yaml"


def _production(home: Path) -> str | None:
    from mlflow import MlflowClient

    try:
        return str(MlflowClient(f"sqlite:///{home / 'mlflow.db'}").get_model_version_by_alias("intents",
                                                                                              "production").version)
    except Exception:
        return None


def test_the_worked_example_under_the_daemon_resumes_after_a_sigkill(plane, tmp_path: Path,  # noqa: F811
                                                                     llmos_home: Path) -> None:
    spec = _worked_example(tmp_path)
    with_deploy = yaml.safe_load(spec.read_text())  # ... and the doc's deploy stage, on a free port
    deploy = yaml.safe_load(re.search(r"## Deploying at the end.*?```yaml\n(.*?)```", DOC.read_text(), re.S).group(1))
    deploy[0]["deploy"]["server"] = {"port": 0}
    with_deploy["stages"] += deploy
    spec.write_text(yaml.safe_dump(with_deploy))
    info = plane()
    with client() as c:
        pid = c.submit_file(spec, priority="high", max_retries=1)["id"]

        def training() -> bool:
            train = c.job(pid)["stages"][0]
            return train["job_id"] is not None and c.job(train["job_id"])["state"] == "RUNNING"

        wait_for(training, timeout_s=120, what="the train stage's job to run")
    os.kill(info["pid"], signal.SIGKILL)  # the daemon dies mid-pipeline
    plane()
    with client() as c:
        wait_for(lambda: c.job(pid)["state"] in ("SUCCEEDED", "FAILED"), timeout_s=900, what="the pipeline to end")
        shown = c.job(pid)
        stage_jobs = {s["name"]: c.job(s["job_id"]) for s in shown["stages"] if s["job_id"]}
        every = c.jobs(limit=100)
    assert shown["state"] == "SUCCEEDED", json.dumps(shown["stages"], indent=1)
    assert [s["state"] for s in shown["stages"]] == ["SUCCEEDED"] * 5
    models = {s["name"]: s["model"] for s in shown["stages"]}
    assert models["train"] == "intents/1" and models["compress"] == models["promote"] == models["deploy"] == "intents/2"
    assert "deployed intents (intents/2) at http://" in shown["stages"][4]["reason"]
    assert _production(llmos_home) == "2"
    assert sum(j["kind"] == "train" for j in every) == 1  # the stage was not started twice
    for job in stage_jobs.values():  # ordinary jobs of the pipeline's owner, priority and retries
        assert (job["owner"], job["priority"], job["max_retries"], job["state"]) == ("admin", "high", 1, "SUCCEEDED")
    shown_cli = llmos("jobs", "show", str(pid)).stdout
    assert "pipeline intents" in shown_cli and "-> promote (promote) SUCCEEDED" in shown_cli
    as_json = json.loads(llmos("jobs", "show", str(pid), "--json").stdout)
    assert [s["name"] for s in as_json["stages"]] == ["train", "compress", "evaluate", "promote", "deploy"]
    assert "intents" in llmos("deploy", "ls").stdout


def test_the_worked_example_in_the_foreground_and_a_failed_gate_stops_before_promotion(tmp_path: Path,
                                                                                        llmos_home: Path) -> None:
    spec = _worked_example(tmp_path)
    result = json.loads(llmos("run", str(spec), "--json", timeout_s=600).stdout)
    assert result["state"] == "succeeded" and [s["state"] for s in result["stages"]] == ["SUCCEEDED"] * 4
    assert _production(llmos_home) == "2"

    strict = yaml.safe_load(spec.read_text())  # the same compression, a bound it cannot meet
    compress, promote = strict["stages"][1], strict["stages"][3]
    compress["compress"].update(model="intents@candidate", gate={"max_size_ratio": 0.01})
    promote.update(after=[])
    strict["stages"] = [compress, promote]
    (tmp_path / "strict.yaml").write_text(yaml.safe_dump(strict))
    failed = llmos("run", str(tmp_path / "strict.yaml"), check=False, timeout_s=600)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    said = " ".join(failed.stderr.split())
    assert "pipeline intents failed at stage compress: gate failed for every child, so nothing is promoted" in said
    assert re.search(r"bf16: size ratio 0\.\d\d > max_size_ratio 0\.01", said), said
    assert "promote (promote) SKIPPED" in failed.stdout
    assert _production(llmos_home) == "2"  # not moved
