"""One real daemon (`llmos up`) and one headless Chromium (Debian's, driven by Playwright) for the
dashboard's browser tests; screenshots go to tests/browser/artifacts/ (ignored by git)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"


def _skip_reason() -> str | None:
    if not CHROMIUM.is_file():
        return f"no headless Chromium at {CHROMIUM}: install Debian's chromium (scripts/setup does, as root)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[dev]'"
    return None


class Plane:
    """The daemon of one LLMOS_HOME and the CLI against it, as any of its token holders."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.tokens: dict[str, str] = {}
        self.url = ""

    def cli(self, *args: str, who: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LLMOS_HOME": str(self.home), "LLMOS_DEBUG": "0"}
        env.pop("LLMOS_TOKEN", None)
        if who is not None:
            env["LLMOS_TOKEN"] = self.tokens[who]
        done = subprocess.run([sys.executable, "-m", "llmos.cli.main", *args], capture_output=True, text=True,
                              timeout=120, env=env)
        if check and done.returncode != 0:
            raise AssertionError(f"llmos {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def submit(self, who: str, name: str, code: str) -> int:
        """Submit a command job from the CLI as `who`; its id."""
        spec = self.home / f"{name}.json"
        spec.write_text(json.dumps({"kind": "command", "name": name, "run": [sys.executable, "-u", "-c", code],
                                    "resources": {"cpus": 1}}))
        return int(json.loads(self.cli("submit", str(spec), "--json", who=who).stdout)["id"])

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """The REST API as the admin (quicker than a CLI process where the CLI is not what is tested)."""
        import httpx

        answer = httpx.request(method, f"{self.url}{path}", headers={"Authorization": f"Bearer {self.tokens['admin']}"},
                               timeout=30, **kw)
        answer.raise_for_status()
        return answer.json()

    def job(self, job_id: int) -> dict[str, Any]:
        return self.api("GET", f"/v1/jobs/{job_id}")


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    plane = Plane(tmp_path_factory.mktemp("llmos-ui-home"))
    plane.cli("up", "--port", "0", "--cpus", "2")
    info = json.loads((plane.home / "control" / "daemon.json").read_text())
    plane.url = info["url"]
    plane.tokens["admin"] = (plane.home / "control" / "admin.token").read_text().strip()
    for role, name in (("developer", "dev"), ("viewer", "viv")):
        plane.tokens[name] = plane.api("POST", "/v1/tokens", json={"role": role, "name": name})["token"]
    # The viewer reads the developer's project (reads are scoped to a user's projects).
    plane.api("POST", "/v1/projects/dev/members", json={"user": "viv", "role": "viewer"})
    try:
        yield plane
    finally:
        plane.cli("down", "--timeout-s", "30", check=False)
        import psutil

        if psutil.pid_exists(info["pid"]):
            os.kill(info["pid"], signal.SIGKILL)


@pytest.fixture(scope="module")
def chromium(plane: Plane) -> Iterator[Any]:
    """One browser for the module; each test opens its own context (its own cookies)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # assertions wait for polls on a busy 2-core machine (default 5 s)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox needs user namespaces that containers and root lack.
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def shot(page: Any, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
