"""Remote access over TLS (issue 14.5), with a real daemon bound to this machine's own non-loopback
address and the real CLI as the HTTPS client: HTTPS by default beyond loopback (a self-signed
certificate, its fingerprint printed), certificate verification on by default (--ca-cert, or a
fingerprint pinned at `llmos login`), the login kept 0600, only `Authorization: Bearer` accepted;
`--insecure-http` warns at start and in `llmos status`."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.integration._util import LLMOS, llmos
from tests.integration.test_control_plane import plane  # noqa: F401  (plane: fixture)


def _own_address() -> str | None:
    import psutil

    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    return None


ADDRESS = _own_address()
pytestmark = [pytest.mark.slow,  # real daemons and the CLI in subprocesses
              pytest.mark.skipif(ADDRESS is None, reason="this machine has no non-loopback IPv4 address")]


def _elsewhere(tmp: Path, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as on another machine: a home with no daemon, a config folder of its own."""
    clean = {k: v for k, v in os.environ.items() if k not in ("LLMOS_TOKEN", "LLMOS_ADDRESS", "LLMOS_CA_CERT")}
    full = {**clean, "LLMOS_HOME": str(tmp / "other-home"), "LLMOS_CONFIG_DIR": str(tmp / "other-config"),
            "LLMOS_DEBUG": "0", "COLUMNS": "200", **env}
    return subprocess.run([*LLMOS, *args], input=stdin, capture_output=True, text=True, timeout=120, env=full)


def test_https_beyond_loopback_and_the_cli_from_another_machine(plane, llmos_home: Path,  # noqa: F811
                                                                tmp_path: Path) -> None:
    up = llmos("up", "--port", "0", "--host", ADDRESS, timeout_s=120)
    info = json.loads((llmos_home / "control" / "daemon.json").read_text())
    url, fingerprint, cert = info["url"], info["tls"]["fingerprint"], info["tls"]["cert"]
    assert url == f"https://{ADDRESS}:{info['port']}" and f"bound to  {ADDRESS}:{info['port']} over HTTPS" in up.stdout
    assert fingerprint in up.stdout.replace("\n", "") and len(fingerprint) == 95
    assert stat.S_IMODE(Path(cert).with_name("key.pem").stat().st_mode) == 0o600
    assert "HTTPS" in llmos("status").stdout  # the local CLI verifies the daemon's own certificate
    token = (llmos_home / "control" / "admin.token").read_text().strip()

    # Verification is on: an unknown certificate is refused with the way out.
    refused = _elsewhere(tmp_path, "--address", url, "jobs", "ls", LLMOS_TOKEN=token)
    assert refused.returncode != 0 and "is not trusted" in refused.stderr and "--fingerprint" in refused.stderr
    trusted = _elsewhere(tmp_path, "--address", url, "--ca-cert", cert, "jobs", "ls", LLMOS_TOKEN=token)
    assert trusted.returncode == 0, trusted.stderr
    with pytest.raises(httpx.HTTPError):  # no plain HTTP on that port
        httpx.get(f"http://{ADDRESS}:{info['port']}/v1/status", headers={"Authorization": f"Bearer {token}"})

    # llmos login pins the fingerprint `up` printed; a wrong one is refused and nothing is saved.
    wrong = _elsewhere(tmp_path, "login", url, "--fingerprint", "AB" * 32, stdin=token)
    assert wrong.returncode != 0 and "not AB" in wrong.stderr and not (tmp_path / "other-config").exists()
    done = _elsewhere(tmp_path, "login", url, "--fingerprint", fingerprint.lower(), stdin=token + "\n")
    assert done.returncode == 0 and "as admin (admin)" in done.stdout, done.stderr
    saved = tmp_path / "other-config" / "login.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600 and json.loads(saved.read_text())["token"] == token
    status = _elsewhere(tmp_path, "status")
    assert status.returncode == 0 and f"running at {url}" in status.stdout and fingerprint in status.stdout
    assert _elsewhere(tmp_path, "logout").stdout.strip() == "logged out" and not saved.exists()


def test_only_a_bearer_header_is_a_token(plane, llmos_home: Path) -> None:  # noqa: F811
    import ssl

    info = plane("--host", ADDRESS)
    token = (llmos_home / "control" / "admin.token").read_text().strip()
    verify = ssl.create_default_context(cafile=info["tls"]["cert"])
    with httpx.Client(base_url=info["url"], verify=verify) as http:
        assert http.get("/v1/status", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert http.get("/v1/status", headers={"Authorization": f"bearer {token}"}).status_code == 200
        for attempt in ({"headers": {"Authorization": token}}, {"headers": {"Authorization": f"Basic {token}"}},
                        {"headers": {"Authorization": f"Token {token}"}}, {"params": {"token": token}},
                        {"params": {"access_token": token}}, {"cookies": {"token": token}},
                        {"headers": {"X-Api-Key": token}}):
            assert http.get("/v1/status", **attempt).status_code == 401, attempt


def test_insecure_http_warns_at_start_and_in_status(plane, llmos_home: Path) -> None:  # noqa: F811
    up = llmos("up", "--port", "0", "--host", ADDRESS, "--insecure-http", timeout_s=120)
    info = json.loads((llmos_home / "control" / "daemon.json").read_text())
    assert info["url"].startswith(f"http://{ADDRESS}:") and info["tls"] is None
    assert "WARNING: plain HTTP" in up.stdout and "over HTTP" in up.stdout
    assert "WARNING: serving plain HTTP" in (llmos_home / "control" / "daemon.log").read_text()
    assert "WARNING: plain HTTP" in llmos("status").stdout
