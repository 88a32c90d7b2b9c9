"""Secrets (issue 14.3): set by a project's developers, listed by name only, encrypted at rest, given
to the job's environment only, never in an API answer (job show returns `${secret:NAME}`), redacted
from the logs the API serves; a job's plain env values are shown to its owner and admins only ("any
viewer reads env API keys"); the state database's password never lands in daemon-config.json."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration._util import llmos, write_job
from tests.integration.test_control_plane import client, plane, wait_for  # noqa: F401  (plane: fixture)
from tests.security._spec_api import api, command  # noqa: F401  (api: fixture)

VALUE = "sk-live-7f3a9c1e55d04b2a"


def test_set_list_remove_and_who_may(api, llmos_home: Path) -> None:  # noqa: F811
    made = api("ann", "PUT", "/v1/projects/ann/secrets/API_KEY", json={"value": VALUE})
    assert made.status_code == 200 and made.json()["created"] and VALUE not in made.text
    assert api("ann", "PUT", "/v1/projects/-/secrets/API_KEY", json={"value": VALUE + "2"}).json()["created"] is False
    listed = api("ann", "GET", "/v1/projects/ann/secrets")
    assert [s["name"] for s in listed.json()] == ["API_KEY"] and VALUE not in listed.text
    for who, method in (("bob", "GET"), ("vic", "GET"), ("bob", "PUT"), ("vic", "PUT"), ("bob", "DELETE")):
        path = "/v1/projects/ann/secrets" + ("" if method == "GET" else "/API_KEY")
        refused = api(who, method, path, **({"json": {"value": "x"}} if method == "PUT" else {}))
        assert refused.status_code == 403, (who, method, refused.text)
    assert api("ann", "PUT", "/v1/projects/ann/secrets/bad-name", json={"value": "x"}).status_code == 422

    # at rest: a Fernet token under a 0600 key outside the database
    from sqlalchemy import select

    from llmos.control._db import read
    from llmos.control._schema import secrets

    with read(api.service.engine) as conn:
        stored = conn.execute(select(secrets.c.value)).scalar_one()
    assert VALUE not in stored and stored.startswith("gAAAA")
    key = llmos_home / "control" / "secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    assert api("ann", "DELETE", "/v1/projects/ann/secrets/API_KEY").status_code == 200
    assert api("ann", "DELETE", "/v1/projects/ann/secrets/API_KEY").status_code == 404
    audit = [(a["actor"], a["action"], a["outcome"], a["detail"]) for a in api("root", "GET", "/v1/audit").json()]
    assert ("ann", "secrets.set", "ok", "created") in audit and ("bob", "secrets.set", "403") in [a[:3] for a in audit]
    assert not any(VALUE in str(a) for a in audit)


def test_references_at_submit_and_env_shown_to_owner_and_admins_only(api) -> None:  # noqa: F811
    unknown = api("ann", "POST", "/v1/jobs", json=command(env={"T": "${secret:NOPE}"}))
    assert unknown.status_code == 422 and unknown.json()["problems"][0]["path"] == "env.T"
    assert "no secret NOPE" in unknown.text and "llmos secrets set NOPE" in unknown.json()["hint"]
    api("ann", "PUT", "/v1/projects/ann/secrets/T", json={"value": VALUE})
    misplaced = api("ann", "POST", "/v1/jobs", json=command(run=["echo", "${secret:T}"]))
    assert misplaced.status_code == 422 and "only in env values" in misplaced.text
    assert api("bob", "POST", "/v1/jobs", json=command(env={"T": "${secret:T}"})).status_code == 422  # ann's

    job = api("ann", "POST", "/v1/jobs", json=command(env={"T": "${secret:T}", "OPENAI_KEY": "sk-plain"})).json()
    for who, role in (("bob", "developer"), ("vic", "viewer")):  # members of ann's project may read its jobs
        assert api("root", "POST", "/v1/projects/ann/members", json={"user": who, "role": role}).status_code == 200
    seen = {who: api(who, "GET", f"/v1/jobs/{job['id']}").json()["spec"]["env"]
            for who in ("ann", "root", "bob", "vic")}
    assert seen["ann"] == seen["root"] == {"T": "${secret:T}", "OPENAI_KEY": "sk-plain"}
    assert seen["bob"] == seen["vic"] == {"T": "${secret:T}", "OPENAI_KEY": "***"}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_real_daemon_gives_the_value_to_the_job_only(plane, tmp_path: Path, llmos_home: Path,  # noqa: F811
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.control._pg import pg_database

    monkeypatch.setenv("LLMOS_ISOLATION", "auto")  # the job runs isolated, as it would for a team
    with pg_database() as url:
        head, rest = url.split("://", 1)
        user, host = rest.split("@", 1)
        plane("--db", f"{head}://{user}:db-pw-4242@{host}")  # trust auth: the password travels, unused
        _secret_round_trip(tmp_path, llmos_home)
        llmos("down", timeout_s=90)


def _secret_round_trip(tmp_path: Path, llmos_home: Path) -> None:
    config = (llmos_home / "control" / "daemon-config.json").read_text()
    assert "db-pw-4242" not in config and "postgresql://postgres@" in config
    assert "db-pw-4242" not in (llmos_home / "control" / "daemon.json").read_text()
    made = llmos("tokens", "create", "--role", "developer", "--name", "ann").stdout
    ann = next(line for line in made.splitlines() if line.startswith("llmos_"))

    def as_ann(*args: str, stdin: str | None = None, code: int = 0) -> str:
        done = subprocess.run([sys.executable, "-m", "llmos.cli.main", *args], input=stdin, capture_output=True,
                              text=True, timeout=60, env={**os.environ, "LLMOS_TOKEN": ann, "LLMOS_DEBUG": "0"})
        assert done.returncode == code, done.stderr
        return done.stdout + done.stderr

    assert "set secret API_KEY of project ann" in as_ann("secrets", "set", "API_KEY", stdin=VALUE + "\n")
    (tmp_path / "other").write_text("from-a-file\n")
    (tmp_path / "other").chmod(0o600)
    assert "set secret OTHER" in as_ann("secrets", "set", "OTHER", "--from-file", str(tmp_path / "other"))
    # confined paths through the CLI too; an admin's root is listed for the project
    escape = write_job(tmp_path / "escape", json.dumps({"kind": "command", "run": ["true"], "cwd": "/etc"}))
    refused = as_ann("submit", str(escape), code=2)
    assert "cwd" in refused and "llmos roots add ann" in refused
    assert str(tmp_path) in llmos("roots", "add", "ann", str(tmp_path)).stdout
    assert str(tmp_path) in [r["path"] for r in json.loads(as_ann("roots", "ls", "ann", "--json"))]
    key = llmos_home / "control" / "secrets.key"
    script = f'echo "key=$API_KEY"; printf %s "$API_KEY" > got.txt; env > env.txt; cat {key} > stolen.txt 2>&1; true'
    spec = write_job(tmp_path / "job", json.dumps({"kind": "command", "name": "uses-key", "run": ["sh", "-c", script],
                                                   "env": {"API_KEY": "${secret:API_KEY}"}}))
    job_id = int(as_ann("submit", str(spec)).split("submitted job ")[1].split()[0])
    with client() as c:
        wait_for(lambda: c.job(job_id)["state"] in ("SUCCEEDED", "FAILED"), what="the job to finish")
        assert c.job(job_id)["state"] == "SUCCEEDED"
    folder = llmos_home / "control" / "jobs" / str(job_id) / "attempt-1"
    assert (folder / "got.txt").read_text() == VALUE  # the job had it
    environment = (folder / "env.txt").read_text()
    assert "db-pw-4242" not in environment and "LLMOS_DB_PASSWORD" not in environment
    assert key.read_text().strip() not in (folder / "stolen.txt").read_text()  # isolation hides the key
    assert VALUE in (folder / "output.log").read_text()  # on disk, as written; the API serves it redacted
    logs = as_ann("logs", str(job_id))
    assert "key=***" in logs and VALUE not in logs
    shown = as_ann("jobs", "show", str(job_id), "--json")
    assert VALUE not in shown and "${secret:API_KEY}" in shown
    listed = as_ann("secrets", "ls", "--json")
    assert '"API_KEY"' in listed and '"OTHER"' in listed and VALUE not in listed and "from-a-file" not in listed


def test_resolved_at_launch_only_and_a_removed_secret_fails_the_start(api) -> None:  # noqa: F811
    from llmos.control._secrets import with_secrets
    from llmos.errors import LlmosError
    from llmos.spec import CommandJob

    api("ann", "PUT", "/v1/projects/ann/secrets/T", json={"value": VALUE})
    job = CommandJob.model_validate({"run": ["true"], "env": {"A": "Bearer ${secret:T}", "B": "plain"}})
    engine = api.service.engine
    assert with_secrets(engine, "ann", job).env == {"A": f"Bearer {VALUE}", "B": "plain"}
    assert job.env["A"] == "Bearer ${secret:T}"  # the job as stored is untouched
    with pytest.raises(LlmosError, match="secret T of project bob") as err:
        with_secrets(engine, "bob", job)  # a job runs with its own project's secrets only
    assert "llmos secrets set T --project bob" in err.value.hint
    api("ann", "DELETE", "/v1/projects/ann/secrets/T")
    with pytest.raises(LlmosError, match="was removed after the job was submitted"):
        with_secrets(engine, "ann", job)
