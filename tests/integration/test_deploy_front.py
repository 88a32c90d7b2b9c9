"""The front address keeps answering while no controller runs: the front router is a process of its
own, which keeps routing to the last replica set, skips replicas that died meanwhile, and is adopted
by the next controller (same pid, same port) or, if it died too, started again on the same port.

The first test drives controllers on stand-in replicas (a killed controller is a subprocess); the
second kills a real control-plane daemon serving a tiny registered model and runs `llmos up` again,
under a client load that must see no failed request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration._deploy_util import Load, running, wait_until
from tests.integration._util import llmos
from tests.integration.test_control_plane import client, plane  # noqa: F401 (a fixture)
from tests.integration.test_deploy_serve import register_tiny
from tests.integration.test_deploy_supervisor import DAEMON, controller, make_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
REPO = Path(__file__).parents[2]


def _running(pid: int) -> bool:
    # A process whose parent died is reaped by whatever adopted it, maybe late: a zombie has ended.
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _recorded(state_dir: Path) -> set[int]:
    """The front and replica pids a deployment's state names: what a failed test must not leave running."""
    try:
        saved = json.loads((state_dir / "deployment.json").read_text())
    except (OSError, ValueError):
        return set()
    return {r["pid"] for r in saved["replicas"]} | ({saved["front"]["pid"]} if saved.get("front") else set())


def _code(url: str) -> int | str:
    try:
        return httpx.post(url, json={"input": "hello"}, timeout=10).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def test_the_front_outlives_its_controller_skips_dead_replicas_and_is_adopted(tmp_path: Path) -> None:
    state_dir = tmp_path / "deploy"
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, str(state_dir)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    pids: set[int] = set()
    try:
        assert daemon.stdout is not None and daemon.stdout.readline().strip() == "READY"
        saved = json.loads((state_dir / "deployment.json").read_text())
        front, replicas = saved["front"], [r["pid"] for r in saved["replicas"]]
        pids |= {front["pid"], *replicas}
        url = f"http://127.0.0.1:{front['port']}/work"
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)

        with Load(url + "?ms=20", clients=2) as load:  # no controller from here on
            time.sleep(1.0)
            os.kill(replicas[0], signal.SIGKILL)  # a replica dies: its requests go to the other one
            time.sleep(1.0)
        assert load.failures() == {}, load.codes
        assert load.codes[200] > 20
        os.kill(replicas[1], signal.SIGKILL)  # the last one dies: a clear 503, not a refused connection
        wait_until(lambda: _code(url) == 503, 10, "a 503 with no replica left")
        none_left = httpx.post(url, timeout=10)
        assert none_left.headers["retry-after"] == "1"
        assert "replica of deployment 'demo' is ready; retry shortly" in none_left.json()["error"]["message"]

        second = controller(tmp_path, make_job(replicas={"min": 2, "max": 2}))
        second.start()  # adopts the front as it runs: no new process, no port gap
        assert (second.status().front_pid, second.front_port) == (front["pid"], front["port"])
        assert any(f"kept the front router that still runs (pid {front['pid']}" in e for e in second.status().events)
        wait_until(lambda: (second.tick(time.monotonic()), second.status().ready)[1] == 2, 20, "two new replicas")
        pids |= {r.pid for r in second.status().replicas}
        assert _code(url) == 200
        second.detach()  # this controller goes away too...
        os.kill(front["pid"], signal.SIGKILL)  # ...and the front dies while none runs
        wait_until(lambda: not _running(front["pid"]), 10, "the front to end")

        third = controller(tmp_path, make_job(replicas={"min": 2, "max": 2}))
        with running(third):
            restarted = third.status().front_pid
            assert restarted is not None and restarted != front["pid"] and third.front_port == front["port"]
            pids.add(restarted)
            assert _code(url) == 200  # the replicas the controller knew ready are routed to at once
            os.kill(restarted, signal.SIGKILL)  # the front dies under a running controller
            wait_until(lambda: third.status().front_pid not in (None, restarted), 10, "the front started again")
            last = third.status().front_pid
            pids.add(last)
            wait_until(lambda: _code(url) == 200, 15, "the front answering again on the same port")
            assert any(f"the front router (pid {restarted}) exited" in e for e in third.status().events)
            replicas_now = {r.pid for r in third.status().replicas}
        assert not _running(last) and not any(_running(pid) for pid in replicas_now)  # stop() took all
        assert not (state_dir / "deployment.json").exists() and not (state_dir / "routes.json").exists()
        assert "listening on 127.0.0.1" in (state_dir / "logs" / "front.log").read_text()
    finally:
        daemon.kill()
        for pid in pids | _recorded(state_dir):
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_sigkilled_daemon_leaves_the_deployment_serving_and_the_next_one_adopts_its_front(
        plane, tmp_path: Path, llmos_home: Path) -> None:  # noqa: F811
    from llmos.deploy._process import free_port

    assert register_tiny(llmos_home, ["negative", "positive"]) == "1"
    first = plane()
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/classify"
    assert "deployed tiny" in llmos("deploy", "tiny@prod", "--port", str(port), "batching.max_wait_ms=1",
                                    timeout_s=120).stdout
    pids: set[int] = set()
    try:
        with client() as c:
            wait_until(lambda: c.deployments()[0]["ready"] == 1, 90, "the replica to be ready")
            before = c.deployments()[0]
        pids |= {before["front_pid"], before["replicas"][0]["pid"]}
        with Load(url, clients=1) as load:
            time.sleep(0.5)
            os.kill(first["pid"], signal.SIGKILL)
            time.sleep(3.0)  # no daemon: the front and the replica serve on
            served_alone = load.codes[200]
            second = plane()
            with client() as c:
                wait_until(lambda: (d := c.deployments()[0])["ready"] == 1 and d["front_pid"] is not None, 30,
                           "the restored deployment")
                after = c.deployments()[0]
            time.sleep(0.5)
        assert load.failures() == {}, load.codes
        assert served_alone > 5 and load.codes[200] > served_alone
        assert second["pid"] != first["pid"]
        # Adopted, not restarted: the same front process on the same port, the same replica.
        assert (after["front_pid"], after["url"]) == (before["front_pid"], before["url"])
        assert after["replicas"][0]["pid"] == before["replicas"][0]["pid"]
        log = (llmos_home / "control" / "daemon.log").read_text()
        assert f"deployment tiny: kept the front router that still runs (pid {before['front_pid']}" in log
        llmos("undeploy", "tiny")
        wait_until(lambda: not any(_running(pid) for pid in pids), 60, "the front and the replica to stop")
        assert _code(url) == "ConnectError"
    finally:
        for pid in pids | _recorded(llmos_home / "control" / "deployments" / "tiny"):
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
