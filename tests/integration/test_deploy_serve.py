"""A deployment of real `llmos serve` replicas of a tiny registered model, run in the foreground by
`python -m llmos.deploy`: the alias moves to a new version, SIGHUP rolls the deployment to it under a
steady client load, no request fails, and SIGTERM drains and stops everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from llmos.deploy._process import free_port
from llmos.registry import set_alias
from tests.integration._deploy_util import Load, wait_until

# Two model loads and a drain: 120-150 s when other work keeps a 2-core machine busy (load 10-12).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def register_tiny(home: Path, labels: list[str], alias: str | None = "prod") -> str:
    """Register a tiny random classifier with these label names as a new version of `tiny`."""
    import torch

    from llmos.models import build, save_trained
    from llmos.registry import register_model
    from llmos.spec import TrackingSpec
    from llmos.tracking import start_run

    torch.manual_seed(0)
    built = build("tiny-bert", "classification", label_names=labels)
    folder = save_trained(built.model, built.tokenizer, home / "work" / "-".join(labels), task="classification",
                          base="tiny-bert", label_names=labels, max_length=32)
    tracker = start_run(TrackingSpec(system_metrics=False), run_name="tiny", job={}, tags={})
    artifact = tracker.log_model_dir(folder)
    tracker.finish()
    return register_model(name="tiny", run_id=tracker.run_id, artifact_uri=artifact, alias=alias, tags={})


def _answers(url: str) -> bool:
    try:
        return httpx.post(url, json={"input": "hello"}, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_roll_real_replicas_to_a_new_version_without_a_failed_request(tmp_path, llmos_home):
    assert register_tiny(llmos_home, ["negative", "positive"]) == "1"
    spec = tmp_path / "tiny.yaml"
    spec.write_text("kind: serve\nname: tiny\nmodel: tiny@prod\nbatching:\n  max_wait_ms: 1\n")
    port, state_dir, log = free_port(), tmp_path / "deploy", tmp_path / "deploy.log"
    with log.open("w") as out:
        runner = subprocess.Popen([sys.executable, "-m", "llmos.deploy", str(spec), "--front-port", str(port),
                                   "--state-dir", str(state_dir)], stdout=out, stderr=subprocess.STDOUT)
    pids: set[int] = set()
    try:
        # Version 2 is registered while the first replica starts (both are slow); the alias moves later.
        assert register_tiny(llmos_home, ["bad", "good"], alias=None) == "2"
        url = f"http://127.0.0.1:{port}/v1/classify"
        wait_until(lambda: _answers(url), 90, "the first llmos serve replica behind the front")
        pids = {r["pid"] for r in json.loads((state_dir / "deployment.json").read_text())["replicas"]}
        with Load(url, clients=1, json={"input": ["a fine film", "dull"]}) as load:
            set_alias("tiny", "2", "prod")  # the alias moves to version 2
            runner.send_signal(signal.SIGHUP)
            wait_until(lambda: "rolled to tiny/2" in log.read_text(), 90, "the roll to version 2")
            time.sleep(0.5)
        state = json.loads((state_dir / "deployment.json").read_text())
        pids |= {r["pid"] for r in state["replicas"]}
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    labels = [reply["data"][0]["label"] for reply in load.replies]
    assert load.failures() == {}, load.codes
    assert labels[0] in {"negative", "positive"} and labels[-1] in {"bad", "good"}
    assert [r["revision"].split("#")[0] for r in state["replicas"]] == ["tiny/2"]
    assert not any(_alive(pid) for pid in pids) and len(pids) == 2
    text = log.read_text()
    assert "-> tiny/1" in text and "stopping: draining" in text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
