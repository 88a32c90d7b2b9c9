"""The REST API in-process: status codes, roles, ownership, audit, and the same spec errors as
`llmos spec validate`."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from llmos.control._app import create_app
from llmos.control._auth import create_token
from llmos.control._db import write

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def api(service):
    tokens = {}
    with write(service.engine) as conn:
        for role, owner in (("admin", "root"), ("developer", "ann"), ("developer", "bob"), ("viewer", "vic")):
            tokens[owner] = create_token(conn, name=owner, owner=owner, role=role)
    client = TestClient(create_app(service, {"pid": 1}))

    def call(who: str | None, method: str, path: str, **kw):
        headers = {"Authorization": f"Bearer {tokens[who]}"} if who else kw.pop("headers", {})
        return client.request(method, path, headers=headers, **kw)
    return call


def spec(name: str = "c", **resources: int) -> dict:
    return {"spec": {"kind": "command", "name": name, "run": ["true"], "resources": resources or {"cpus": 1}}}


def test_tokens_and_roles(api) -> None:
    assert api(None, "GET", "/healthz").status_code == 200
    assert api(None, "GET", "/openapi.json").json()["info"]["title"] == "llmos control plane"
    assert api(None, "GET", "/v1/jobs").status_code == 401
    bad = api(None, "GET", "/v1/jobs", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "not known" in bad.json()["error"]
    assert api("vic", "GET", "/v1/jobs").status_code == 200
    denied = api("vic", "POST", "/v1/jobs", json=spec())
    assert denied.status_code == 403 and "developer role" in denied.json()["error"]
    ann_job = api("ann", "POST", "/v1/jobs", json=spec("mine")).json()["id"]
    # bob is no member of ann's project: its job answers as a missing one (tests/security/test_projects.py)
    assert api("bob", "POST", f"/v1/jobs/{ann_job}/cancel").status_code == 404
    assert api("ann", "POST", "/v1/tokens", json={"role": "admin", "name": "x"}).status_code == 403
    assert api("ann", "POST", f"/v1/jobs/{ann_job}/cancel").status_code == 200
    again = api("root", "POST", f"/v1/jobs/{ann_job}/cancel")
    assert again.status_code == 409 and "already finished" in again.json()["error"]
    assert api("root", "GET", "/v1/jobs/4242").status_code == 404
    assert api("root", "POST", "/v1/jobs/4242/cancel").status_code == 404
    made = api("root", "POST", "/v1/tokens", json={"role": "viewer", "name": "ci"})
    assert made.status_code == 201 and made.json()["token"].startswith("llmos_")
    audit = api("root", "GET", "/v1/audit").json()
    seen = [(a["actor"], a["action"], a["outcome"]) for a in reversed(audit)]
    # Every refused call is audited, the 401s without a (known) token and the 404 of a read too.
    assert seen == [("anonymous", "GET /v1/jobs", "401"), ("anonymous", "GET /v1/jobs", "401"),
                    ("vic", "submit", "403"), ("ann", "submit", "ok"), ("bob", "cancel", "404"),
                    ("ann", "tokens.create", "403"), ("ann", "cancel", "ok"), ("root", "cancel", "409"),
                    ("root", "GET /v1/jobs/{job_id}", "404"), ("root", "cancel", "404"),
                    ("root", "tokens.create", "ok")]
    assert all(a["source"].startswith("testclient") for a in audit)
    assert api("ann", "GET", "/v1/audit").status_code == 403


def test_bad_input(api, tmp_path) -> None:
    from llmos.errors import SpecError
    from llmos.spec import load_job

    too_big = api("root", "POST", "/v1/jobs", json=spec(cpus=3, gpus=1))
    assert too_big.status_code == 422
    assert "3 CPUs" in too_big.json()["error"] and "has 2" in too_big.json()["error"]
    # An invalid training spec: the same problems `llmos spec validate` reports.
    raw = {"kind": "train", "data": {"train": str(tmp_path / "a.csv")}, "train": {"lr": "fast", "epoch": 2}}
    (tmp_path / "job.yaml").write_text(__import__("yaml").safe_dump(raw))
    with pytest.raises(SpecError) as local:
        load_job(tmp_path / "job.yaml")
    remote = api("root", "POST", "/v1/jobs", json={"spec": raw})
    assert remote.status_code == 422
    assert [(p["path"], p["message"]) for p in remote.json()["problems"]] == local.value.problems
    multi = api("root", "POST", "/v1/jobs", json={"spec": {**raw, "train": {}}, "overrides": [
        "resources.nodes=2", "resources.rdzv_endpoint=h:1"]})
    assert multi.status_code == 422 and multi.json()["problems"][0]["path"] == "resources.nodes"
    assert api("root", "POST", "/v1/jobs", json={**spec(), "priority": "urgent"}).status_code == 422
    assert api("root", "GET", "/v1/jobs?state=DONE").status_code == 400
    assert api("root", "GET", "/v1/jobs", params={"limit": 0}).status_code == 422
    assert api("root", "GET", "/v1/jobs").json() == []  # nothing was stored


def test_listing_and_logs(api, service) -> None:
    from llmos.control._projects import set_member

    ids = [api("ann", "POST", "/v1/jobs", json=spec(f"j{i}")).json()["id"] for i in range(5)]
    assert api("vic", "GET", "/v1/jobs").json() == []  # ann's project's jobs, until vic is a member there
    with write(service.engine) as conn:
        set_member(conn, "ann", "vic", "viewer")
    listed = api("vic", "GET", "/v1/jobs", params={"limit": 3}).json()
    assert [j["id"] for j in listed] == ids[::-1][:3]
    older = api("vic", "GET", "/v1/jobs", params={"before": listed[-1]["id"]}).json()
    assert [j["id"] for j in older] == ids[:2][::-1]
    assert api("vic", "GET", f"/v1/jobs/{ids[0]}/logs").json() == []
    assert api("vic", "GET", f"/v1/jobs/{ids[0]}/logs/../../../state.db").status_code == 404
