"""A pipeline under a root daemon whose jobs run as their project's OS user (`isolation: users`):
train -> evaluate -> promote -> deploy, every stage a job (or a deployment) of project alpha, runs
through; the alias moved and the deployment answers. The rest of the pipeline tests run trusted."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.integration.test_control_plane import client, plane, wait_for  # noqa: F401  (plane: fixture)

pytestmark = [pytest.mark.slow,  # a real daemon, a training run, two step jobs and a replica
              pytest.mark.skipif(os.geteuid() != 0, reason="the users isolation needs a root daemon")]


def test_a_pipeline_runs_through_with_its_jobs_isolated(plane, llmos_home: Path, sentiment_csv,  # noqa: F811
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    from llmos.deploy._process import free_port

    monkeypatch.setenv("LLMOS_ISOLATION", "users")
    info = plane()
    assert info["isolation"] == "users"
    data = llmos_home / "projects" / "alpha" / "data"  # what jobs of project alpha may read
    data.mkdir(parents=True)
    train, test = (Path(shutil.copy(p, data)) for p in sentiment_csv)
    port = free_port()
    spec = {"kind": "pipeline", "name": "iso", "stages": [
        {"name": "train", "train": {
            "model": {"name": "tiny-bert", "max_length": 32}, "data": {"train": str(train), "eval": str(test)},
            "train": {"max_steps": 10, "batch_size": 16, "lr": 0.005, "num_threads": 1},
            "tracking": {"system_metrics": False}, "register": {"name": "iso", "alias": "candidate"}}},
        {"name": "evaluate", "evaluate": {"model": "${stages.train.model}", "data": str(test),
                                          "min": {"accuracy": 0.05}}},
        {"name": "promote", "after": ["evaluate"],
         "promote": {"model": "${stages.train.model}", "alias": "production"}},
        {"name": "deploy", "deploy": {"model": "${stages.promote.model}", "server": {"port": port}},
         "ready_timeout_s": 180}]}
    with client() as c:
        pid = c.submit(spec, project="alpha", max_retries=0)["id"]
        wait_for(lambda: c.job(pid)["state"] in ("SUCCEEDED", "FAILED"), timeout_s=300, what="the pipeline to end")
        shown = c.job(pid)
        logs = {s["name"]: c.read_log(s["job_id"], "attempt-1/output.log")["text"][-2000:]
                for s in shown["stages"] if s["job_id"] and s["state"] == "FAILED"}
        stage_jobs = [c.job(s["job_id"]) for s in shown["stages"] if s["job_id"]]
    assert shown["state"] == "SUCCEEDED", json.dumps(shown["stages"], indent=1) + json.dumps(logs, indent=1)
    assert [s["state"] for s in shown["stages"]] == ["SUCCEEDED"] * 4
    assert all(j["project"] == "alpha" for j in stage_jobs) and len(stage_jobs) == 3
    version = MlflowClient(f"sqlite:///{llmos_home / 'mlflow.db'}").get_model_version_by_alias("iso", "production")
    assert shown["stages"][2]["model"] == f"iso/{version.version}"
    assert "1/1 ready" in shown["stages"][3]["reason"], shown["stages"][3]
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/classify", json={"input": "a fine film"}, timeout=30)
    assert answer.status_code == 200, answer.text
