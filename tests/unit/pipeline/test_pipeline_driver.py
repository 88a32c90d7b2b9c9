"""The control plane's pipeline driver over a real store: stage jobs are ordinary jobs with the
pipeline's owner, priority and retries; a finished stage never reruns, a new driver (a restarted
daemon) picks up where the last one was; a failed stage fails the pipeline, naming it. Stage jobs'
outcomes are written here by hand (as the loop writes them), so no process runs."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from llmos.control._auth import Caller
from llmos.control._db import read, write
from llmos.control._pipelines import PipelineDriver
from llmos.control._schema import jobs
from llmos.control._states import JobState
from llmos.control._transition import transition

ADMIN = Caller("admin", "admin", "test")


def _spec(csv: Path) -> dict:
    return {"kind": "pipeline", "name": "p", "stages": [
        {"name": "train", "train": {"model": {"name": "tiny-bert"}, "data": {"train": str(csv)},
                                    "register": {"name": "intents"}}},
        {"name": "promote", "promote": {"model": "${stages.train.model}", "alias": "production"}},
        {"name": "evaluate", "after": ["train"], "evaluate": {"model": "${stages.train.model}", "data": str(csv)}}]}


def _finish(engine, job_id: int, ok: bool) -> None:
    with write(engine) as conn:
        if not ok:
            transition(conn, job_id, JobState.FAILED, "attempt 3 failed with exit code 1; no retries left", now_s=1.0)
            return
        for to in (JobState.STARTING, JobState.RUNNING, JobState.SUCCEEDED):
            transition(conn, job_id, to, f"to {to}", now_s=1.0)


def _stages(service, pipeline_id: int) -> dict:
    return {s["name"]: s for s in service.job(pipeline_id)["stages"]}


def test_stages_run_as_jobs_of_the_pipeline_and_a_restarted_driver_resumes(service, engine, tmp_path: Path) -> None:
    csv = tmp_path / "train.csv"
    csv.write_text("text,label\ngood,pos\nbad,neg\n")
    pid = service.submit(ADMIN, _spec(csv), priority="high", max_retries=3)["id"]
    assert service.job(pid)["state"] == "RUNNING" and service.job(pid)["workers"] == 0  # never queued
    PipelineDriver(engine).tick()
    stages = _stages(service, pid)
    assert [s["state"] for s in stages.values()] == ["RUNNING", "PENDING", "PENDING"]
    train = service.job(stages["train"]["job_id"])
    assert (train["kind"], train["name"], train["owner"], train["priority"], train["max_retries"]) == (
        "train", "p-train", "admin", "high", 3)
    assert train["spec"]["output"] == stages["train"]["folder"] == train["run_dir"]

    PipelineDriver(engine).tick()  # a restarted daemon: the stage is recorded, its job is not made twice
    with read(engine) as conn:
        assert conn.execute(select(func.count()).select_from(jobs).where(jobs.c.kind == "train")).scalar() == 1

    folder = Path(stages["train"]["folder"])
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"registered": {"name": "intents", "version": "7"},
                                                     "metrics": {"accuracy": 0.9}}))
    _finish(engine, train["id"], ok=True)
    PipelineDriver(engine).tick()
    stages = _stages(service, pid)
    assert stages["train"]["state"] == "SUCCEEDED" and stages["train"]["model"] == "intents/7"
    assert stages["promote"]["state"] == stages["evaluate"]["state"] == "RUNNING"  # both needed only train
    step = json.loads((Path(stages["promote"]["folder"]) / "step.json").read_text())
    assert step["body"] == {"model": "intents/7", "alias": "production"}  # the reference, filled in
    promote = service.job(stages["promote"]["job_id"])
    assert promote["kind"] == "command" and promote["spec"]["run"][1:3] == ["-m", "llmos.pipeline"]

    _finish(engine, stages["evaluate"]["job_id"], ok=False)
    PipelineDriver(engine).tick()
    assert service.job(pid)["state"] == "RUNNING"  # promote still runs: it is left to finish
    (Path(stages["promote"]["folder"]) / "result.json").write_text(json.dumps(
        {"passed": True, "model": "intents/7", "reason": "intents@production -> version 7"}))
    _finish(engine, stages["promote"]["job_id"], ok=True)
    PipelineDriver(engine).tick()
    shown = service.job(pid)
    assert shown["state"] == "FAILED"
    assert shown["reason"].startswith(f"stage evaluate failed: job {stages['evaluate']['job_id']} FAILED: attempt 3")
    assert [s["state"] for s in shown["stages"]] == ["SUCCEEDED", "SUCCEEDED", "FAILED"]


def test_a_cancelled_pipeline_cancels_its_running_stage_and_skips_the_rest(service, engine, tmp_path: Path) -> None:
    csv = tmp_path / "train.csv"
    csv.write_text("text,label\ngood,pos\nbad,neg\n")
    pid = service.submit(ADMIN, _spec(csv))["id"]
    PipelineDriver(engine).tick()
    train_id = _stages(service, pid)["train"]["job_id"]
    service.cancel(ADMIN, pid)
    PipelineDriver(engine).tick()
    assert service.job(train_id)["state"] == "CANCELLED"
    assert [s["state"] for s in service.job(pid)["stages"]] == ["FAILED", "SKIPPED", "SKIPPED"]


class _Deployments:
    """Stands in for the daemon's DeploymentManager (tested on its own): records what it was asked and
    answers `show` with the view a test sets (`ready` replicas of `version` out of min 1)."""

    def __init__(self) -> None:
        self.asked: list[tuple] = []
        self.ready, self.version, self.gone = 0, "", False

    def deploy(self, caller: Caller, job, project: str) -> dict:
        self.asked.append((caller.owner, job.name, job.model, project))
        self.version = job.model
        return self.show(job.name)

    def show(self, name: str) -> dict:
        from llmos.control._errors import NotFound

        if self.gone:
            raise NotFound(f"no deployment {name}.")
        replicas = [{"id": "r3", "version": self.version, "state": "ready" if self.ready else "starting"}]
        return {"name": name, "model_version": self.version, "url": "http://127.0.0.1:9", "min": 1,
                "replicas": replicas, "rollout": None, "events": ["r1 (pid 7) exited with code 1 before it was "
                                                                  "ready; replacing it in 2.0 s"], "canary": None}

    def log_files(self, name: str) -> list[dict]:
        return [{"name": "front.log", "size": 10}, {"name": "r1.log", "size": 30}, {"name": "r2.log", "size": 40},
                {"name": "r3.log", "size": 0}]  # r3 has just started: r2's log says why it exited

    def read_log(self, name: str, file: str, offset: int = 0) -> dict:
        return {"text": f"loading {file}\nOSError: model.safetensors is not a safetensors file\n"[offset:]}


def _deploy_pipeline(service, engine, timeout_s: float = 600) -> tuple[int, _Deployments]:
    """A pipeline promote -> deploy, run up to its deploy stage asking for intents/3."""
    spec = {"kind": "pipeline", "name": "p", "stages": [
        {"name": "promote", "promote": {"model": "intents/3", "alias": "production"}},
        {"name": "deploy", "deploy": {"model": "${stages.promote.model}"}, "ready_timeout_s": timeout_s}]}
    pid = service.submit(ADMIN, spec)["id"]
    deployments = _Deployments()
    driver = PipelineDriver(engine, deployments=deployments)
    driver.tick()
    promote = _stages(service, pid)["promote"]
    (Path(promote["folder"]) / "result.json").write_text(json.dumps(
        {"passed": True, "model": "intents/3", "reason": "intents@production -> version 3"}))
    _finish(engine, promote["job_id"], ok=True)
    driver.tick(now=100.0)  # promote succeeded: the deployment is made at once, as the caller who submitted
    assert deployments.asked == [("admin", "p", "intents/3", service.job(pid)["project"])]
    return pid, deployments


def test_a_deploy_stage_succeeds_once_its_replicas_are_ready_across_a_restart(service, engine) -> None:
    pid, deployments = _deploy_pipeline(service, engine)
    PipelineDriver(engine, deployments=deployments).tick(now=110.0)
    deploy = _stages(service, pid)["deploy"]
    assert (deploy["state"], service.job(pid)["state"]) == ("RUNNING", "RUNNING")  # created, not serving yet
    assert deploy["reason"].startswith("deploying: 0/1 ready (intents/3;") and deploy["started_s"] == 100.0
    deployments.ready = 1
    PipelineDriver(engine, deployments=deployments).tick(now=120.0)  # a restarted daemon goes on waiting
    shown = service.job(pid)
    assert shown["state"] == "SUCCEEDED" and shown["reason"] == "every stage succeeded; it yielded intents/3"
    assert shown["stages"][1]["reason"] == "deployed p (intents/3) at http://127.0.0.1:9: 1/1 ready"


def test_a_deploy_stage_not_ready_in_its_time_fails_with_the_replicas_last_lines(service, engine) -> None:
    pid, deployments = _deploy_pipeline(service, engine, timeout_s=30)
    driver = PipelineDriver(engine, deployments=deployments)
    driver.tick(now=129.0)
    assert _stages(service, pid)["deploy"]["state"] == "RUNNING"
    driver.tick(now=131.0)
    shown = service.job(pid)
    reason = shown["stages"][1]["reason"]
    assert shown["state"] == "FAILED" and shown["stages"][1]["state"] == "FAILED"
    assert "p had 0/1 replica(s) of intents/3 ready after 30 s (ready_timeout_s)" in reason, reason
    assert "exited with code 1 before it was ready" in reason
    assert "last lines of r2.log: loading r2.log | OSError: model.safetensors is not a safetensors file" in reason


def test_a_deploy_stage_whose_deployment_goes_away_fails(service, engine) -> None:
    pid, deployments = _deploy_pipeline(service, engine)
    deployments.gone = True
    PipelineDriver(engine, deployments=deployments).tick(now=101.0)
    assert service.job(pid)["stages"][1]["reason"] == (
        "the deployment of intents/3 was removed while the stage waited for it")


def test_a_gate_that_fails_stops_the_pipeline_before_promotion_naming_the_bound(service, engine,
                                                                                tmp_path: Path) -> None:
    csv = tmp_path / "dev.csv"
    csv.write_text("text,label\ngood,pos\nbad,neg\n")
    spec = {"kind": "pipeline", "name": "p", "stages": [
        {"name": "compress", "compress": {"model": "intents/1", "recipe": ["bf16"], "eval": str(csv)}},
        {"name": "promote", "promote": {"model": "${stages.compress.model}", "alias": "production"}}]}
    pid = service.submit(ADMIN, spec)["id"]
    driver = PipelineDriver(engine)
    driver.tick()
    compress = _stages(service, pid)["compress"]
    assert service.job(compress["job_id"])["kind"] == "compress"
    Path(compress["folder"]).mkdir(parents=True, exist_ok=True)
    (Path(compress["folder"]) / "report.json").write_text(json.dumps({"registered_name": "intents", "children": [
        {"label": "bf16", "registered": "2", "measured": {"throughput": 10.0},
         "gate": {"passed": False, "reasons": ["size ratio 0.51 > max_size_ratio 0.01"]}}]}))
    _finish(engine, compress["job_id"], ok=True)  # the job did its work: the verdict is the gate's
    driver.tick()
    shown = service.job(pid)
    assert [s["state"] for s in shown["stages"]] == ["FAILED", "SKIPPED"]
    assert shown["state"] == "FAILED" and shown["reason"] == (
        "stage compress failed: gate failed for every child, so nothing is promoted (bf16: size ratio 0.51 > "
        "max_size_ratio 0.01)")


def test_a_pipeline_whose_stages_name_missing_data_is_refused_at_submission(service, tmp_path: Path) -> None:
    import pytest

    from llmos.errors import SpecError

    spec = {"kind": "pipeline", "name": "p", "stages": [
        {"name": "train", "train": {"data": {"train": str(tmp_path / "gone.csv")}, "register": {"name": "m"}}},
        {"name": "compress", "compress": {"model": "${stages.train.model}", "recipe": ["bf16"],
                                          "eval": str(tmp_path / "dev.csv")}},
        {"name": "evaluate", "evaluate": {"model": "${stages.compress.model}", "data": str(tmp_path / "t.csv")}}]}
    with pytest.raises(SpecError) as caught:
        service.submit(ADMIN, spec)
    assert [p for p, _ in caught.value.problems] == ["stages.0.train.data", "stages.1.compress.eval",
                                                     "stages.2.evaluate.data"]
    assert service.jobs(ADMIN) == []  # nothing was queued
