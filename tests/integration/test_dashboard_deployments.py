"""The dashboard's deployments page over a real deployment: the daemon's DeploymentManager with a real
controller, a real front router process and two stand-in replica processes; requests/s, p95 and
errors are read from the front's own /metrics as traffic passes."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.integration._deploy_util import running, standin_spawn, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_the_deployments_page_follows_a_real_fronts_traffic(tmp_path: Path) -> None:
    from llmos.control._app import create_app
    from llmos.control._auth import create_token
    from llmos.control._config import ControlConfig
    from llmos.control._db import open_db, write
    from llmos.control._deployments import DeploymentManager
    from llmos.control._inventory import Inventory
    from llmos.control._projects import ensure_project, set_member
    from llmos.control._service import Service
    from llmos.deploy import DeploymentController
    from llmos.spec import ServeJob

    engine = open_db(f"sqlite:///{tmp_path / 'state.db'}")
    inventory = Inventory(cores=(0, 1), memory_gb=8.0)
    service = Service(engine, inventory, ControlConfig(port=0))
    with write(engine) as conn:
        token = create_token(conn, name="viv", owner="viv", role="viewer")
        ensure_project(conn, "ann")
        set_member(conn, "ann", "viv", "viewer")  # the deployment is ann's project's; viv reads it
    job = ServeJob.model_validate({"kind": "serve", "name": "demo", "model": "demo@prod",
                                   "replicas": {"min": 2, "max": 2}})
    ctrl = DeploymentController("demo", job, state_dir=tmp_path / "deploy", front_port=0,
                                spawn=standin_spawn(), resolve_model=lambda ref, uri: "demo/1")
    manager = DeploymentManager(engine, inventory)
    manager.controllers["demo"], manager.owners["demo"] = ctrl, "ann"
    service.deployments = manager
    client = TestClient(create_app(service, {"pid": 1}), follow_redirects=False)
    form = client.get("/ui/login").text
    csrf = re.search(r'name="login_csrf" value="([^"]+)"', form).group(1)
    assert client.post("/ui/login", data={"token": token, "login_csrf": csrf}).status_code == 303

    with running(ctrl):
        wait_until(lambda: ctrl.status().ready == 2, 30, "two ready replicas")
        first = client.get("/ui/deployments")
        assert first.status_code == 200 and "demo@prod → demo/1" in first.text
        assert "2 ready of 2 wanted" in first.text and first.text.count('class="state ready"') == 2
        assert "0 requests since the front started" in first.text
        started = time.monotonic()
        with httpx.Client(timeout=10) as http:
            for _ in range(40):
                assert http.post(f"{ctrl.status().front_url}/work?ms=30").status_code == 200
        time.sleep(max(0.0, 1.05 - (time.monotonic() - started)))  # the dashboard scrapes at most once a second
        second = client.get("/ui/deployments?partial=1").text
        _screenshot(client.app, token, ctrl.status().front_url)
    traffic = re.search(r"([\d.]+) requests/s over ([\d.]+) s · p95 ([\d.]+) ms · errors (\d+)", second)
    assert traffic, second
    rate, window_s, p95_ms, errors = (float(g) for g in traffic.groups())
    assert rate == pytest.approx(40 / window_s, rel=0.05) and errors == 0  # (the window is shown to 0.1 s)
    assert p95_ms >= 25  # every request waited 30 ms in the replica; the histogram's buckets are 25, 50, 75 ms
    per_replica = re.findall(r"<td>([\d.]+)</td>\s*<td>([\d.]+) ms</td>\s*<td>0</td></tr>", second)
    assert len(per_replica) == 2 and sum(float(r) for r, _ in per_replica) == pytest.approx(rate, abs=0.02)


def _screenshot(app: object, token: str, front: str) -> None:
    """The page in headless Chromium while traffic flows, for docs/dashboard.md (where Chromium is installed)."""
    import socket
    import threading

    import uvicorn

    from tests.browser.conftest import ARTIFACTS, CHROMIUM, shot

    if not CHROMIUM.is_file():
        return
    from playwright.sync_api import expect, sync_playwright

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    wait_until(lambda: server.started, 10, "the dashboard server")
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                http.post(f"{front}/work?ms=20")

    loader = threading.Thread(target=load)
    loader.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 520})
            page.goto(f"http://127.0.0.1:{sock.getsockname()[1]}/ui/deployments")
            page.fill("#token", token)
            page.click("#login")
            page.goto(f"http://127.0.0.1:{sock.getsockname()[1]}/ui/deployments")
            expect(page.locator(".traffic")).to_contain_text("requests/s", timeout=10_000)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot(page, "deployments")
            browser.close()
    finally:
        stop.set()
        loader.join()
        server.should_exit = True
