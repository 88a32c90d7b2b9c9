"""Reads are scoped to the caller's projects, over real HTTP: a viewer and a developer of project
alpha list only alpha's jobs (the API, the CLI, the dashboard), another project's job, its logs and a
deployment's logs answer 404 exactly as a missing one does, `llmos top` names no holder of another
project, and an admin sees everything (the attack: "any viewer reads another team's job specs and
logs")."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from sqlalchemy import insert, update

from tests.security._server import Plane, control_plane

pytestmark = pytest.mark.timeout(120)


def _job(name: str) -> dict:
    return {"kind": "command", "name": name, "run": ["true"], "env": {"API_KEY": f"key-of-{name}"}}


def _teams(plane: Plane, http: httpx.Client) -> dict[str, int]:
    """Projects alpha (ann developer, vic viewer) and beta (bob developer), a job in each with a log
    file, and beta's job holding core 1. Returns the job ids by project."""
    from llmos.control._paths import job_dir

    root = plane.headers("root")
    bob = http.post("/v1/tokens", headers=root, json={"role": "developer", "name": "bob"}).json()["token"]
    plane.tokens["bob"] = bob
    members = (("alpha", "ann", "developer"), ("alpha", "vic", "viewer"), ("beta", "bob", "developer"))
    for project, user, role in members:
        if http.get(f"/v1/projects/{project}", headers=root).status_code == 404:
            assert http.post("/v1/projects", headers=root, json={"name": project}).status_code == 201
        added = http.post(f"/v1/projects/{project}/members", headers=root, json={"user": user, "role": role})
        assert added.status_code == 200, added.text
    ids = {}
    for project, who in (("alpha", "ann"), ("beta", "bob")):
        made = http.post("/v1/jobs", headers=plane.headers(who), json={"spec": _job(f"in-{project}"),
                                                                         "project": project})
        assert made.status_code == 201, made.text
        ids[project] = made.json()["id"]
        log = job_dir(ids[project]) / "attempt-1" / "worker-0.log"
        log.parent.mkdir(parents=True)
        log.write_text(f"secret results of {project}\n")
    with plane.service.engine.begin() as conn:  # as the loop would place it (no loop runs here)
        from llmos.control._schema import jobs

        conn.execute(update(jobs).where(jobs.c.id == ids["beta"]).values(
            state="RUNNING", holds=True, memory_gb=1.0,
            placement=json.dumps({"workers": [{"cores": [1], "gpus": [], "memory_gb": 1.0}]})))
    return ids


def test_jobs_and_their_logs_are_read_only_in_the_callers_projects() -> None:
    with control_plane() as plane, httpx.Client(base_url=plane.url, timeout=30) as http:
        ids = _teams(plane, http)
        a, b = ids["alpha"], ids["beta"]
        missing = http.get("/v1/jobs/999999", headers=plane.headers("root"))
        assert missing.status_code == 404

        for who in ("vic", "ann"):  # any role in alpha: alpha's jobs only
            h = plane.headers(who)
            assert [j["id"] for j in http.get("/v1/jobs", headers=h).json()] == [a], who
            assert [j["id"] for j in http.get("/v1/jobs", headers=h, params={"owner": "bob"}).json()] == []
            assert http.get(f"/v1/jobs/{a}", headers=h).json()["project"] == "alpha"
            files = http.get(f"/v1/jobs/{a}/logs", headers=h).json()
            assert [f["name"] for f in files] == ["attempt-1/worker-0.log"]
            text = http.get(f"/v1/jobs/{a}/logs/attempt-1/worker-0.log", headers=h).json()
            assert "secret results of alpha" in json.dumps(text)
            # Another project's job is answered exactly as a job that does not exist.
            for path in (f"/v1/jobs/{b}", f"/v1/jobs/{b}/logs", f"/v1/jobs/{b}/logs/attempt-1/worker-0.log"):
                hidden = http.get(path, headers=h)
                assert hidden.status_code == 404, (who, path, hidden.text)
                assert hidden.json() == {**missing.json(), "error": f"no job {b}."}, hidden.json()
                assert "secret results of beta" not in hidden.text and "key-of" not in hidden.text
            assert http.get("/v1/status", headers=h).json()["counts"] == {"QUEUED": 1}
            top = http.get("/v1/top", headers=h).json()
            assert [c["job"] for c in top["cores"]] == [None, "another project"]
            assert top["jobs"] == [] and top["memory"]["reserved_by_jobs_gb"] == 1.0  # the amount stays

        bob = plane.headers("bob")
        assert [j["id"] for j in http.get("/v1/jobs", headers=bob).json()] == [b]
        assert http.get(f"/v1/jobs/{a}", headers=bob).status_code == 404
        assert [c["job"] for c in http.get("/v1/top", headers=bob).json()["cores"]] == [None, str(b)]

        root = plane.headers("root")  # the admin sees both, with beta's env values
        assert [j["id"] for j in http.get("/v1/jobs", headers=root).json()] == [b, a]
        shown = http.get(f"/v1/jobs/{b}", headers=root).json()
        assert shown["spec"]["env"]["API_KEY"] == "key-of-in-beta"
        assert "secret results of beta" in http.get(f"/v1/jobs/{b}/logs/attempt-1/worker-0.log", headers=root).text
        assert http.get("/v1/status", headers=root).json()["counts"] == {"QUEUED": 1, "RUNNING": 1}
        top = http.get("/v1/top", headers=root).json()
        assert [c["job"] for c in top["cores"]] == [None, str(b)] and [j["id"] for j in top["jobs"]] == [str(b)]


def test_another_projects_deployment_is_a_404() -> None:
    from llmos.control._deployments import DeploymentManager
    from llmos.control._paths import control_dir
    from llmos.control._schema import deployments

    with control_plane() as plane, httpx.Client(base_url=plane.url, timeout=30) as http:
        _teams(plane, http)
        now = time.time()
        with plane.service.engine.begin() as conn:  # a stopped deployment of beta, its logs kept
            conn.execute(insert(deployments).values(name="beta-svc", owner="bob", model_ref="m@production",
                                                    spec="{}", front_port=1, state="STOPPED", created_s=now,
                                                    updated_s=now, project="beta", priority=1))
        logs = control_dir() / "deployments" / "beta-svc" / "logs"
        logs.mkdir(parents=True)
        (logs / "front.log").write_text("beta's traffic\n")
        plane.service.deployments = DeploymentManager(plane.service.engine, plane.service.inventory,
                                                      log=lambda _m: None)
        for who, allowed in (("bob", True), ("root", True), ("ann", False), ("vic", False)):
            listed = http.get("/v1/deployments/beta-svc/logs", headers=plane.headers(who))
            text = http.get("/v1/deployments/beta-svc/logs/front.log", headers=plane.headers(who))
            if allowed:
                assert listed.status_code == 200 and [f["name"] for f in listed.json()] == ["front.log"], listed.text
                assert "beta's traffic" in text.text
            else:
                unknown = http.get("/v1/deployments/no-such/logs", headers=plane.headers(who))
                assert listed.status_code == text.status_code == unknown.status_code == 404, listed.text
                assert listed.json()["error"] == "no deployment beta-svc." and "traffic" not in text.text
            show = http.get("/v1/deployments/beta-svc", headers=plane.headers(who))
            assert show.status_code == 404 and show.json()["error"] == "no deployment beta-svc."


def test_the_cli_and_the_dashboard_show_a_viewer_only_its_projects() -> None:
    import psutil
    from typer.testing import CliRunner

    from llmos.cli.main import app
    from llmos.control._paths import daemon_file

    with control_plane() as plane, httpx.Client(base_url=plane.url, timeout=30) as http:
        ids = _teams(plane, http)
        daemon_file().write_text(json.dumps({"pid": psutil.Process().pid, "create_time": psutil.Process().create_time(),
                                             "url": plane.url}))
        runner = CliRunner()

        def llmos(*args: str, who: str) -> str:
            result = runner.invoke(app, list(args), env={"LLMOS_TOKEN": plane.tokens[who], "COLUMNS": "200"})
            assert result.exit_code == 0, result.output
            return result.output

        table = llmos("jobs", who="vic")
        assert "in-alpha" in table and "in-beta" not in table, table
        assert [j["id"] for j in json.loads(llmos("jobs", "ls", "--json", who="vic"))["jobs"]] == [ids["alpha"]]
        both = llmos("jobs", who="root")
        assert "in-alpha" in both and "in-beta" in both
        hidden = runner.invoke(app, ["jobs", "show", str(ids["beta"])], env={"LLMOS_TOKEN": plane.tokens["vic"]})
        assert hidden.exit_code != 0 and f"no job {ids['beta']}" in str(hidden.exception) + hidden.output
        assert "another project" in llmos("top", "--once", who="vic")

        # The dashboard, logged in as the viewer: the same scope on its pages and its log JSON.
        login = http.get("/ui/login")
        csrf = re.search(r'name="login_csrf" value="([^"]+)"', login.text).group(1)
        assert http.post("/ui/login", data={"token": plane.tokens["vic"], "login_csrf": csrf}).status_code == 303
        page = http.get("/ui/jobs")
        assert page.status_code == 200 and "in-alpha" in page.text and "in-beta" not in page.text
        assert http.get(f"/ui/jobs/{ids['beta']}").status_code == 404
        assert http.get(f"/ui/jobs/{ids['beta']}/logs").status_code == 404
        assert http.get(f"/ui/jobs/{ids['beta']}/log", params={"name": "attempt-1/worker-0.log"}).status_code == 404
        assert http.get(f"/ui/jobs/{ids['alpha']}/logs").json()[0]["name"] == "attempt-1/worker-0.log"
        nodes = http.get("/ui/nodes")
        assert nodes.status_code == 200 and "another project" in nodes.text and "in-beta" not in nodes.text


def test_a_cluster_node_counts_what_another_project_holds_without_naming_it() -> None:
    from types import SimpleNamespace

    from llmos.control._top import _nodes
    from llmos.executor import Cluster, Inventory

    cluster = Cluster((Inventory(cores=(0, 1, 2, 3), memory_gb=16.0, name="n1", address="10.0.0.1"),), backend="ray")

    def holding(job_id: int, cores: list[int]) -> SimpleNamespace:
        return SimpleNamespace(id=job_id, placement=json.dumps({"workers": [
            {"node": "n1", "cores": cores, "gpus": [], "memory_gb": 2.0}]}))

    replica = {"id": "svc/r1", "node": "n1", "cores": [3], "gpus": [], "memory_gb": 1.0}
    (node,) = _nodes(cluster, [holding(1, [0]), holding(2, [1, 2])], [replica], shown={"1"})
    assert node["held"] == {"cpus": 4, "memory_gb": 5.0, "gpus": 0, "jobs": ["1"]}  # no "replicas": not shown
    (node,) = _nodes(cluster, [holding(1, [0]), holding(2, [1, 2])], [replica], shown={"1", "2", "svc/r1"})
    assert node["held"]["jobs"] == ["1", "2"] and node["held"]["replicas"] == ["svc/r1"]
