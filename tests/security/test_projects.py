"""Projects and roles over real HTTP: a developer of one project cannot submit, cancel or deploy in
another, cannot raise its own project's priority or membership, cannot use a class its project was
not granted (the attack: "a developer submits at critical into another team's project and preempts
its work"), and a project over its cap waits while the machine has room."""

from __future__ import annotations

import sys
import time

import httpx
import pytest
from sqlalchemy import select

from tests.security._server import control_plane

pytestmark = pytest.mark.timeout(120)


def _job(name: str, *argv: str, cpus: int = 1) -> dict:
    return {"kind": "command", "name": name, "run": list(argv or ["true"]), "resources": {"cpus": cpus}}


def test_a_developer_acts_only_in_its_own_projects() -> None:
    with control_plane() as plane, httpx.Client(base_url=plane.url, timeout=30) as http:
        root, ann = plane.headers("root"), plane.headers("ann")
        bob = {"Authorization": "Bearer " + http.post("/v1/tokens", headers=root, json={
            "role": "developer", "name": "bob"}).json()["token"]}
        for name in ("nlp", "vision"):
            assert http.post("/v1/projects", headers=root, json={"name": name}).status_code == 201
        assert http.post("/v1/projects/nlp/members", headers=root, json={"user": "ann", "role": "developer"}
                         ).status_code == 200
        http.post("/v1/projects/vision/members", headers=root, json={"user": "bob", "role": "developer"})

        # Another team's project: no submit, no deploy, no cancel.
        refused = http.post("/v1/jobs", headers=ann, json={"spec": _job("x"), "project": "vision"})
        assert refused.status_code == 403
        assert "not a member of project vision" in refused.json()["error"]
        assert "llmos projects add-member vision ann --role developer" in refused.json()["hint"]
        in_spec = http.post("/v1/jobs", headers=ann, json={"spec": {**_job("x"), "project": "vision"}})
        assert in_spec.status_code == 403  # `project:` in the spec is checked the same way
        deploy = http.post("/v1/deployments", headers=ann, json={"spec": {
            "name": "d", "model": "m@production", "project": "vision"}})
        assert deploy.status_code == 403 and "vision" in deploy.json()["error"]
        ours = http.post("/v1/jobs", headers=ann, json={"spec": _job("mine"), "project": "nlp"})
        assert ours.status_code == 201
        job_id = ours.json()["id"]
        assert plane.service.job(job_id)["project"] == "nlp"
        theirs = http.post(f"/v1/jobs/{job_id}/cancel", headers=bob)
        # bob reads nothing of nlp: its job answers as a missing one, naming no project
        missing = http.post("/v1/jobs/999999/cancel", headers=bob)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["error"] == f"no job {job_id}." and "nlp" not in theirs.text

        # Without a job's project named, it goes to the user's own project (as before projects).
        own = http.post("/v1/jobs", headers=ann, json={"spec": _job("own")})
        assert own.status_code == 201 and plane.service.job(own.json()["id"])["project"] == "ann"

        # A viewer sees but does not submit, even in its own project.
        viewer = http.post("/v1/jobs", headers=plane.headers("vic"), json={"spec": _job("v")})
        assert viewer.status_code == 403

        # A developer cannot give itself access, a grant or a quota.
        assert http.post("/v1/projects/vision/members", headers=ann, json={"user": "ann", "role": "developer"}
                         ).status_code == 403
        assert http.post("/v1/projects/nlp/grant", headers=ann, json={"priority": "critical"}).status_code == 403
        assert http.post("/v1/projects/nlp/quota", headers=ann, json={"cap_cpus": 100}).status_code == 403
        assert [p["name"] for p in http.get("/v1/projects", headers=ann).json()] == ["ann", "nlp"]
        assert http.get("/v1/projects/vision", headers=ann).status_code == 403

        # Every refusal left an audit row naming the caller and the status.
        refusals = [(r["actor"], r["action"], r["outcome"]) for r in http.get(
            "/v1/audit", headers=root, params={"limit": 1000}).json() if r["outcome"] != "ok"]
        assert ("ann", "submit", "403") in refusals and ("bob", "cancel", "404") in refusals
        assert ("ann", "projects.grant", "403") in refusals, refusals


def test_critical_needs_the_projects_grant() -> None:
    with control_plane() as plane, httpx.Client(base_url=plane.url, timeout=30) as http:
        root, ann = plane.headers("root"), plane.headers("ann")

        def submit(priority: str) -> httpx.Response:
            return http.post("/v1/jobs", headers=ann, json={"spec": _job(priority), "priority": priority})

        refused = submit("critical")
        assert refused.status_code == 403
        assert "project ann is not granted the critical priority class" in refused.json()["error"]
        assert refused.json()["hint"].endswith("llmos projects grant ann --priority critical")
        assert submit("high").status_code == 403 and submit("normal").status_code == 201
        granted = http.post("/v1/projects/ann/grant", headers=root, json={"priority": "high"})
        assert granted.status_code == 200 and granted.json()["priority_granted"] == "high"
        assert submit("high").status_code == 201 and submit("critical").status_code == 403
        http.post("/v1/projects/ann/grant", headers=root, json={"priority": "normal"})  # taken back
        assert submit("high").status_code == 403


def test_a_project_over_its_cap_waits_until_the_cap_is_raised() -> None:
    from llmos.control._loop import ControlLoop
    from llmos.control._schema import jobs

    with control_plane(grace_s=1.0) as plane, httpx.Client(base_url=plane.url, timeout=30) as http:
        root, ann = plane.headers("root"), plane.headers("ann")
        assert http.post("/v1/projects/ann/quota", headers=root, json={"cap_cpus": 1}).json()["cap_cpus"] == 1
        sleep = (sys.executable, "-c", "import time; time.sleep(60)")
        ids = [http.post("/v1/jobs", headers=ann, json={"spec": _job(f"s{i}", *sleep)}).json()["id"]
               for i in range(2)]
        loop = ControlLoop(plane.service.engine, plane.service.inventory, plane.service.config, log=lambda _m: None)
        try:
            def states() -> list[str]:
                with plane.service.engine.connect() as conn:
                    return [conn.execute(select(jobs.c.state).where(jobs.c.id == i)).scalar_one() for i in ids]

            for _ in range(3):
                loop.tick()
            assert states() == ["RUNNING", "QUEUED"] or states() == ["STARTING", "QUEUED"]  # 2 cores, cap 1
            http.post("/v1/projects/ann/quota", headers=root, json={"cap_cpus": 2})
            deadline = time.monotonic() + 30
            while states()[1] == "QUEUED":
                assert time.monotonic() < deadline, "the second job never started after the cap was raised"
                loop.tick()
                time.sleep(0.05)
        finally:
            for job_id in ids:
                http.post(f"/v1/jobs/{job_id}/cancel", headers=ann)
            loop.stop_all("test over", timeout_s=5)


def test_the_cli_manages_projects_through_the_api() -> None:
    """`llmos projects ...` and `llmos users ls` against a real control plane (this process plays the
    daemon in LLMOS_HOME's record, so `Client.local` finds it)."""
    import json

    import psutil
    from typer.testing import CliRunner

    from llmos.cli.main import app
    from llmos.control._paths import daemon_file

    with control_plane() as plane:
        daemon_file().write_text(json.dumps({"pid": psutil.Process().pid, "create_time": psutil.Process().create_time(),
                                             "url": plane.url}))
        runner = CliRunner()

        def llmos(*args: str, who: str = "root") -> str:
            result = runner.invoke(app, list(args), env={"LLMOS_TOKEN": plane.tokens[who], "COLUMNS": "200"})
            assert result.exit_code == 0, result.output
            return result.output

        assert "project nlp created" in llmos("projects", "create", "nlp")
        assert "ann: developer" in llmos("projects", "add-member", "nlp", "ann", "--role", "developer")
        llmos("projects", "grant", "nlp", "--priority", "critical")
        llmos("projects", "quota", "nlp", "--cpus", "4", "--guarantee-gpus", "1", "--weight", "2")
        shown = json.loads(llmos("projects", "show", "nlp", "--json"))
        assert (shown["priority_granted"], shown["cap_cpus"], shown["guarantee_gpus"], shown["weight"]) == (
            "critical", 4, 1, 2)
        assert shown["members"] == [{"user": "ann", "role": "developer"}]
        assert [p["name"] for p in json.loads(llmos("projects", "ls", "--json", who="ann"))] == ["ann", "nlp"]
        users = {u["name"]: u for u in json.loads(llmos("users", "ls", "--json"))}
        assert {"project": "nlp", "role": "developer"} in users["ann"]["projects"] and users["ann"]["tokens"] == 1
        from llmos.paths import home

        job = home() / "in-nlp.yaml"  # any folder will do for the spec file: LLMOS_HOME's
        job.write_text("kind: command\nname: in-nlp\nproject: nlp\nrun: ['true']\n")
        submitted = json.loads(llmos("submit", str(job), "--json", who="ann"))
        assert plane.service.job(submitted["id"])["project"] == "nlp"  # `project:` in the spec file
        job.write_text("kind: command\nname: elsewhere\nproject: vision\nrun: ['true']\n")
        elsewhere = runner.invoke(app, ["submit", str(job)], env={"LLMOS_TOKEN": plane.tokens["ann"]})
        assert elsewhere.exit_code != 0 and "no project vision" in str(elsewhere.exception)
        llmos("projects", "rm-member", "nlp", "ann")
        refused = runner.invoke(app, ["projects", "grant", "nlp", "--priority", "high"],
                                env={"LLMOS_TOKEN": plane.tokens["ann"]})
        assert refused.exit_code != 0 and "needs the admin role" in str(refused.exception)  # main() prints it
