"""The dashboard in-process: login and sessions, CSRF, roles enforced on the server, and the jobs
table's paging with 10,000 jobs in the store."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from llmos.control._app import create_app
from llmos.control._auth import create_token
from llmos.control._db import write
from llmos.control._projects import ensure_project, set_member
from llmos.control._schema import jobs

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def tokens(service) -> dict[str, str]:
    made = {}
    with write(service.engine) as conn:
        for role, owner in (("admin", "root"), ("developer", "ann"), ("viewer", "vic")):
            made[owner] = create_token(conn, name=owner, owner=owner, role=role)
    return made


@pytest.fixture
def browser(service, tokens):
    """`browser(who)`: a client (its own cookie jar) logged in through the login form as `who`."""
    app = create_app(service, {"pid": 1})

    def open_as(who: str | None, base_url: str = "http://testserver") -> TestClient:
        client = TestClient(app, base_url=base_url, follow_redirects=False)
        if who is not None:
            page = client.get("/ui/login")
            answer = client.post("/ui/login", data={"token": tokens[who], "next": "/ui/jobs",
                                                    "login_csrf": _field(page.text, "login_csrf")})
            assert answer.status_code == 303 and answer.headers["location"] == "/ui/jobs", answer.text
        return client
    return open_as


def _field(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]+)"', html).group(1)


def test_login_session_cookie_and_logout(browser, service, tokens) -> None:
    anon = browser(None)
    first = anon.get("/ui/jobs?state=RUNNING")
    assert first.status_code == 303 and first.headers["location"] == "/ui/login?next=%2Fui%2Fjobs%3Fstate%3DRUNNING"
    page = anon.get(first.headers["location"])
    assert page.status_code == 200 and 'name="token"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    csrf = _field(page.text, "login_csrf")
    refused = anon.post("/ui/login", data={"token": tokens["ann"], "login_csrf": "forged"})
    assert refused.status_code == 403 and "another site" in refused.text
    wrong = anon.post("/ui/login", data={"token": "llmos_nope", "login_csrf": csrf})
    assert wrong.status_code == 401 and "not known" in wrong.text and "Traceback" not in wrong.text
    csrf = _field(wrong.text, "login_csrf")  # each form gets a fresh one
    ok = anon.post("/ui/login", data={"token": tokens["ann"], "login_csrf": csrf, "next": "/ui/jobs?state=RUNNING"})
    assert ok.status_code == 303 and ok.headers["location"] == "/ui/jobs?state=RUNNING"
    cookie = next(h for h in ok.headers.get_list("set-cookie") if h.startswith("llmos_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie and "Secure" not in cookie
    assert tokens["ann"] not in cookie
    assert anon.get("/ui/jobs").status_code == 200
    assert anon.get("/v1/jobs").status_code == 401  # the API takes only Authorization: Bearer, never the cookie
    jobs_page = anon.get("/ui/jobs")
    assert "ann" in jobs_page.text and "(developer)" in jobs_page.text and 'href="/ui/audit"' not in jobs_page.text
    assert anon.post("/ui/logout", data={"csrf": "forged"}).status_code == 403
    out = anon.post("/ui/logout", data={"csrf": _field(jobs_page.text, "csrf")})
    assert out.status_code == 303
    assert anon.get("/ui/jobs").status_code == 303  # the session is closed on the server
    from llmos.control._auth import Caller

    refusals = [(a["actor"], a["action"], a["outcome"]) for a in service.audit(Caller("root", "admin"))]
    assert ("anonymous", "POST /ui/login", "401") in refusals  # a failed login is audited
    assert ("ann", "POST /ui/logout", "403") in refusals  # so is a form without its CSRF token


def test_secure_cookie_under_tls(browser) -> None:
    client = browser(None, base_url="https://testserver")
    page = client.get("/ui/login")
    assert "Secure" in page.headers["set-cookie"]
    ok = client.post("/ui/login", data={"token": "llmos_nope", "login_csrf": _field(page.text, "login_csrf")})
    assert ok.status_code == 401


def test_roles_are_enforced_on_the_server(browser, service, tokens) -> None:
    ann, vic, root = browser("ann"), browser("vic"), browser("root")
    from llmos.control._auth import Caller

    job = service.submit(Caller("ann", "developer"), {"kind": "command", "name": "sleepy", "run": ["sleep", "60"],
                                                      "env": {"API_KEY": "s3cr3t-value"},
                                                      "resources": {"cpus": 1}})["id"]
    assert vic.get(f"/ui/jobs/{job}").status_code == 404  # another project's job, as if there were none
    with write(service.engine) as conn:
        set_member(conn, "ann", "vic", "viewer")
    seen = vic.get(f"/ui/jobs/{job}")
    assert seen.status_code == 200 and "sleepy" in seen.text and 'id="cancel"' not in seen.text
    assert "API_KEY" in seen.text and "s3cr3t-value" not in seen.text  # masked for all but its owner and admins
    # A viewer who forges the form (with their own session's CSRF token) is refused by the service.
    refused = vic.post(f"/ui/jobs/{job}/cancel", data={"csrf": _field(seen.text, "csrf")})
    assert refused.status_code == 403 and "vic (viewer) may not cancel jobs" in refused.text
    page = ann.get(f"/ui/jobs/{job}")
    assert 'id="cancel"' in page.text and "s3cr3t-value" in page.text
    assert ann.post(f"/ui/jobs/{job}/cancel", data={}).status_code == 403  # no CSRF token
    done = ann.post(f"/ui/jobs/{job}/cancel", data={"csrf": _field(page.text, "csrf")})
    assert done.status_code == 303 and service.job(job)["state"] == "CANCELLED"
    assert vic.get("/ui/audit").status_code == 403
    audit = root.get("/ui/audit?actor=vic")
    assert audit.status_code == 200 and f"job {job}" in audit.text and ">403<" in audit.text
    assert ">ann<" not in audit.text  # filtered to vic's rows
    assert root.get("/ui/jobs/999999").status_code == 404
    # Revoking a token ends the sessions opened with it at their next request.
    token_id = next(t["id"] for t in service.tokens(Caller("root", "admin")) if t["owner"] == "vic")
    service.revoke_token(Caller("root", "admin"), token_id)
    assert vic.get("/ui/jobs").status_code == 303
    assert vic.get("/ui/nodes", headers={"X-Llmos-Poll": "1"}).status_code == 401


def test_pages_render(browser) -> None:
    root = browser("root")
    for path, text in (("/ui/nodes", "core"), ("/ui/nodes?partial=1", "core-0"), ("/ui/deployments", "Deployments"),
                       ("/ui/jobs?partial=1", "No jobs"), ("/ui/static/ui.js", "data-poll")):
        answer = root.get(path)
        assert answer.status_code == 200 and text in answer.text, path


def test_ten_thousand_jobs_page_fast(browser, service) -> None:
    now = time.time()
    rows = [{"name": f"job{i}", "kind": "command", "owner": "ann" if i % 2 else "bob", "project": "p", "priority": 1,
             "state": "SUCCEEDED" if i % 3 else "QUEUED", "spec": "{}", "workers": 1, "cpus": 1.0, "memory_gb": 1.0,
             "gpus": 0, "max_retries": 0, "submit_s": now + i, "updated_s": now + i, "reason": ""}
            for i in range(10_000)]
    with write(service.engine) as conn:
        conn.execute(insert(jobs), rows)
        ensure_project(conn, "p")
        set_member(conn, "p", "vic", "viewer")  # a viewer reads its projects' jobs (all of these)
    client = browser("vic")
    client.get("/ui/jobs")  # templates compiled once
    started = time.perf_counter()
    first = client.get("/ui/jobs")
    took_s = time.perf_counter() - started
    assert first.status_code == 200 and first.text.count('<tr id="job-') == 50
    assert 'id="job-10000"' in first.text and ">QUEUED 3334<" in first.text.replace("</span>", "<")
    assert took_s < 1.0, f"/ui/jobs took {took_s:.2f} s with 10,000 jobs"
    older = re.search(r'id="older" href="([^"]+)"', first.text).group(1).replace("&amp;", "&")
    second = client.get(older)
    assert 'id="job-9950"' in second.text and 'id="job-9951"' not in second.text
    filtered = client.get("/ui/jobs?state=QUEUED&owner=bob&limit=200")
    ids = [int(i) for i in re.findall(r'<tr id="job-(\d+)"', filtered.text)]
    assert len(ids) == 200 and all(not (i - 1) % 2 and not (i - 1) % 3 for i in ids)


def test_deployments_page_shows_the_fronts_traffic(browser, service) -> None:
    """The deployment manager is a stand-in here (a real one needs replicas: tests/integration); the
    front's metrics come from a real HTTP server with the text a front serves."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from tests.unit.control.test_ui_pure import FRONT

    scrapes = [FRONT, FRONT.replace('replica="r1",status="200"} 90.0', 'replica="r1",status="200"} 190.0')
               .replace('le="0.01",replica="r1"} 50.0', 'le="0.01",replica="r1"} 150.0')
               .replace('le="0.1",replica="r1"} 92.0', 'le="0.1",replica="r1"} 192.0')
               .replace('le="+Inf",replica="r1"} 92.0', 'le="+Inf",replica="r1"} 192.0')]

    class Front(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = scrapes.pop(0).encode() if len(scrapes) > 1 else scrapes[0].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Front)
    Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    replica = {"pid": 1, "port": 1, "url": url, "version": "sent/3", "state": "ready", "cores": [1]}

    class Manager:
        def list(self) -> list[dict]:
            return [{"name": "sent", "model": "sent@production", "model_version": "sent/3", "url": url, "front_pid": 1,
                     "desired": 2, "ready": 2, "min": 1, "max": 3, "owner": "ann", "project": "ann", "scaling": "",
                     "waiting": 0,
                     "rollout": "rolling", "events": ["r2 ready"],
                     "replicas": [{**replica, "id": "r1"}, {**replica, "id": "r2", "state": "starting"}]}]

    service.deployments = Manager()
    with write(service.engine) as conn:
        set_member(conn, "ann", "vic", "viewer")  # a viewer sees its projects' deployments
    try:
        viv = browser("vic")
        first = viv.get("/ui/deployments").text
        assert "sent@production" in first and "rolling" in first and "2 ready of 2 wanted" in first
        assert "100 requests since the front started" in first and "errors 5" in first
        time.sleep(1.05)  # the dashboard scrapes a front at most once a second
        second = viv.get("/ui/deployments?partial=1").text
        assert re.search(r"\d+(\.\d+)? requests/s over \d+(\.\d+)? s · p95 9\.5 ms · errors 0", second), second
    finally:
        server.shutdown()
