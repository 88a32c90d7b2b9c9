"""A deploy stage succeeds when its deployment serves, not when it is created (issue 16): under a real
daemon that is SIGKILLed while the stage waits for its replica and started again, and with `llmos run`;
a version whose replicas cannot load fails the stage once they exited three times in a row, long
before its `ready_timeout_s`, with the replica's last log lines, while `llmos jobs show` says it waits."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration._util import llmos
from tests.integration.test_control_plane import client, plane, wait_for  # noqa: F401  (plane: a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _register(home: Path, broken: bool = False) -> str:
    """A tiny random classifier as a new version of `tiny`; `broken`: its weights file is garbage, so
    that a replica of it exits while loading."""
    import torch

    from llmos.models import build, save_trained
    from llmos.registry import register_model
    from llmos.spec import TrackingSpec
    from llmos.tracking import start_run

    torch.manual_seed(0)
    built = build("tiny-bert", "classification", label_names=["negative", "positive"])
    folder = save_trained(built.model, built.tokenizer, home / "work" / ("broken" if broken else "good"),
                          task="classification", base="tiny-bert", label_names=["negative", "positive"], max_length=32)
    if broken:
        (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    tracker = start_run(TrackingSpec(system_metrics=False), run_name="tiny", job={}, tags={})
    artifact = tracker.log_model_dir(folder)
    tracker.finish()
    return register_model(name="tiny", run_id=tracker.run_id, artifact_uri=artifact, alias=None, tags={})


def _pipeline(path: Path, name: str, model: str, port: int = 0, **stage: object) -> Path:
    path.write_text(yaml.safe_dump({"kind": "pipeline", "name": name, "stages": [
        {"name": "serve", "deploy": {"model": model, "server": {"port": port}}, **stage}]}))
    return path


def test_a_deploy_stage_waits_for_its_replica_across_a_daemon_restart(plane, tmp_path: Path,  # noqa: F811
                                                                     llmos_home: Path) -> None:
    from llmos.deploy._process import free_port

    version = _register(llmos_home)
    info, port = plane(), free_port()
    with client() as c:
        pid = c.submit_file(_pipeline(tmp_path / "p.yaml", "ready", f"tiny/{version}", port))["id"]
        wait_for(lambda: c.job(pid)["stages"][0]["state"] != "PENDING", 60, "the deploy stage to start")
        waiting = c.job(pid)["stages"][0]
    os.kill(info["pid"], signal.SIGKILL)  # the daemon dies while the stage waits for the replica
    assert waiting["state"] == "RUNNING", waiting  # the deployment is made; its replica is not ready yet
    assert waiting["reason"].startswith(f"deploying: 0/1 ready (tiny/{version};"), waiting
    plane()
    with client() as c:
        wait_for(lambda: c.job(pid)["state"] in ("SUCCEEDED", "FAILED"), 180, "the pipeline to end")
        shown = c.job(pid)
    stage = shown["stages"][0]
    assert shown["state"] == "SUCCEEDED", stage
    assert stage["reason"] == f"deployed ready (tiny/{version}) at http://127.0.0.1:{port}: 1/1 ready"
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/classify", json={"input": "fine"}, timeout=30)
    assert answer.status_code == 200, answer.text  # ready meant: it answers

    # The same in the foreground: `llmos run` deploys on the control plane and waits for the replica.
    run = llmos("run", str(_pipeline(tmp_path / "fg.yaml", "fg", f"tiny/{version}")), "--json", timeout_s=240)
    result = json.loads(run.stdout)
    assert result["state"] == "succeeded", result
    assert result["stages"][0]["reason"].startswith(f"deployed fg (tiny/{version}) at http://"), result
    assert result["stages"][0]["reason"].endswith(": 1/1 ready"), result


def test_a_version_that_cannot_load_fails_the_stage_after_three_exits_in_a_row(plane, tmp_path: Path,  # noqa: F811
                                                                           llmos_home: Path) -> None:
    version = _register(llmos_home, broken=True)
    plane()
    with client() as c:
        # The default bound (600 s): the stage fails on the third exit in a row, not on the clock.
        pid = c.submit_file(_pipeline(tmp_path / "p.yaml", "broken", f"tiny/{version}"))["id"]
        wait_for(lambda: c.job(pid)["stages"][0]["state"] == "RUNNING", 60, "the deploy stage to wait")
        shown_cli = llmos("jobs", "show", str(pid)).stdout
        wait_for(lambda: c.job(pid)["state"] in ("SUCCEEDED", "FAILED"), 180, "the pipeline to end")
        shown = c.job(pid)
    assert "serve (deploy) RUNNING" in shown_cli and "deploying: 0/1 ready" in shown_cli, shown_cli
    reason = shown["stages"][0]["reason"]
    assert shown["state"] == "FAILED" and shown["stages"][0]["state"] == "FAILED", reason
    assert reason.startswith(f"broken had 0/1 replica(s) of tiny/{version} ready: they exited before they were "
                             "ready 3 times in a row, so the stage did not wait out its 600 s"), reason
    assert shown["stages"][0]["updated_s"] - shown["stages"][0]["started_s"] < 300, shown["stages"][0]
    assert "exited with code 1 before it was ready" in reason, reason
    assert re.search(r"last lines of r\d+\.log: .*Error", reason), reason  # why the replica that exited did
    assert shown["reason"].startswith("stage serve failed: broken had 0/1"), shown["reason"]
