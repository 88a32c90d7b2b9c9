"""A deployment on a full machine goes through the scheduling policy: it preempts low-priority work
for its replica instead of sharing cores, and the work runs again once it is undeployed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.integration._util import llmos
from tests.integration.test_control_plane import client, command_job, plane, wait_for  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
PY = sys.executable


def test_a_deployment_preempts_low_work_for_its_replica_and_never_shares_cores(plane, tmp_path: Path,  # noqa: F811
                                                                               llmos_home: Path) -> None:
    import httpx

    from llmos.deploy._process import free_port
    from tests.integration.test_deploy_serve import register_tiny

    assert register_tiny(llmos_home, ["negative", "positive"]) == "1"
    plane()
    marker = tmp_path / "ran"
    # Sleeps on its first run (until preempted); succeeds at once when it runs again.
    prog = f"import os, sys, time\nif os.path.exists({str(marker)!r}): sys.exit(0)\n" \
           f"open({str(marker)!r}, 'w').close(); time.sleep(600)\n"
    with client() as c:
        low = c.submit_file(command_job(tmp_path, "low", [PY, "-c", prog], cpus=2), priority="low")["id"]
        wait_for(lambda: c.job(low)["state"] == "RUNNING" and marker.exists(), timeout_s=60, what="the low job")
        port = free_port()
        assert "deployed tiny" in llmos("deploy", "tiny@prod", "--port", str(port), "batching.max_wait_ms=1",
                                        timeout_s=120).stdout
        wait_for(lambda: c.deployments()[0]["ready"] == 1, timeout_s=150, what="the replica to be ready")
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/classify", json={"input": "hello"}, timeout=30)
        assert answer.status_code == 200, (answer.text, c.deployments())
        shown, deployment = c.job(low), c.deployments()[0]
        moves = [(t["from"], t["to"]) for t in shown["transitions"]]
        assert moves.count(("RUNNING", "PREEMPTED")) == 1 and ("PREEMPTED", "QUEUED") in moves, moves
        assert shown["state"] == "QUEUED", shown  # 2 cores asked, 1 left beside the replica
        replica_cores = deployment["replicas"][0]["cores"]
        assert len(replica_cores) == 1 and deployment["waiting"] == 0, deployment
        assert any("r1 waits for 1 free core(s)" in e for e in deployment["events"]), deployment["events"]
        llmos("undeploy", "tiny")
        wait_for(lambda: c.job(low)["state"] == "SUCCEEDED", timeout_s=90, what="the low job once the replica left")
        assert [a["exit_code"] for a in c.job(low)["attempts"]] == [-15, 0]
        attempt = c.job(low)["attempts"][0]["placement"]["workers"][0]["cores"]
        assert len(attempt) == 2, attempt
