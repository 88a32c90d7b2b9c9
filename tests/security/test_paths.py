"""Confined spec paths (issue 14.2), as an attacker with a developer token tries them over REST:
`output: /etc/x`, `../../..`, `data.train: /etc/shadow`, a symlink that points out, another project's
run folder. Each is refused at submit with a 422 naming the field and the folders; an admin's roots
open a folder to one project only; registry references and hub ids are not paths."""

from __future__ import annotations

from pathlib import Path

from tests.security._spec_api import api, command, train  # noqa: F401  (api: fixture)


def _refused(answer, field: str) -> dict:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert field in [p["path"] for p in body["problems"]], body
    assert "llmos roots add" in body["hint"]
    return body


def test_the_issue_attacks_are_refused_at_submit(api, llmos_home: Path) -> None:  # noqa: F811
    own = llmos_home / "projects" / "ann"
    body = _refused(api("ann", "POST", "/v1/jobs", json=train(output="/etc/x")), "output")
    assert str(own) in body["problems"][0]["message"]  # the folders it may use are named
    _refused(api("ann", "POST", "/v1/jobs", json=train(output=f"{own}/../../../../etc")), "output")
    _refused(api("ann", "POST", "/v1/jobs", json=train(data={"train": "/etc/shadow"})), "data.train")
    _refused(api("ann", "POST", "/v1/jobs", json=train(model={"name": "../../../etc"})), "model.name")
    _refused(api("ann", "POST", "/v1/jobs", json=command(cwd="/etc")), "cwd")
    _refused(api("ann", "POST", "/v1/jobs", json=train(model={"name": "~nobody-here/x"})), "model.name")
    _refused(api("ann", "POST", "/v1/jobs", json=train(output="~nobody-here/x")), "output")  # a 422, not a 500
    _refused(api("ann", "POST", "/v1/jobs", json=train(output=str(llmos_home / "control"))), "output")
    stage = {"name": "tr", "train": {"data": {"train": "/etc/shadow", "label_column": "label"},
                                     "register": {"name": "m"}}}
    pipeline = {"spec": {"kind": "pipeline", "name": "p", "stages": [stage]}}
    _refused(api("ann", "POST", "/v1/jobs", json=pipeline), "stages.0.train.data.train")  # a stage's spec too
    deploy = {"spec": {"name": "d", "model": "sentiment@production", "tracking_uri": "sqlite:////etc/mlflow.db"}}
    _refused(api("ann", "POST", "/v1/deployments", json=deploy), "tracking_uri")  # llmos deploy specs too
    own.mkdir(parents=True)
    (own / "link").symlink_to("/etc")
    body = _refused(api("ann", "POST", "/v1/jobs", json=train(data={"train": f"{own}/link/shadow"})), "data.train")
    assert "resolves to /etc/shadow" in body["problems"][0]["message"]
    audit = [(a["actor"], a["action"], a["outcome"]) for a in api("root", "GET", "/v1/audit").json()]
    assert audit.count(("ann", "submit", "422")) == 11


def test_own_folders_run_folders_and_added_roots(api, llmos_home: Path, tmp_path: Path) -> None:  # noqa: F811
    own = llmos_home / "projects" / "ann"
    ok = api("ann", "POST", "/v1/jobs", json=train(output=f"{own}/run", data={"train": f"{own}/d.csv"}))
    assert ok.status_code == 201, ok.text
    first = api("ann", "POST", "/v1/jobs", json=train()).json()  # llmos picks runs/t-ID: its own
    teacher = {"teacher": f"{first['run_dir']}/model"}
    assert api("ann", "POST", "/v1/jobs", json=train(distill=teacher)).status_code == 201
    _refused(api("bob", "POST", "/v1/jobs", json=train(distill=teacher)), "distill.teacher")  # ann's run

    shared = tmp_path / "team-data"
    shared.mkdir()
    spec = train(data={"train": f"{shared}/train.csv"})
    _refused(api("ann", "POST", "/v1/jobs", json=spec), "data.train")
    assert api("ann", "POST", "/v1/projects/ann/roots", json={"path": str(shared)}).status_code == 403
    added = api("root", "POST", "/v1/projects/ann/roots", json={"path": str(shared)})
    assert added.status_code == 201 and added.json()["path"] == str(shared.resolve())
    assert api("ann", "POST", "/v1/jobs", json=spec).status_code == 201
    _refused(api("bob", "POST", "/v1/jobs", json=spec), "data.train")  # the root is ann's project's only
    listed = api("ann", "GET", "/v1/projects/ann/roots").json()
    assert [(r["path"], r["default"]) for r in listed] == [(str(own), True), (str(shared.resolve()), False)]
    assert api("root", "POST", "/v1/projects/ann/roots", json={"path": "relative/x"}).status_code == 422
    assert api("root", "POST", "/v1/projects/ann/roots", json={"path": "/"}).status_code == 422
    gone = api("root", "DELETE", "/v1/projects/ann/roots", params={"path": str(shared)})
    assert gone.status_code == 200
    _refused(api("ann", "POST", "/v1/jobs", json=spec), "data.train")
    audit = [(a["actor"], a["action"], a["outcome"]) for a in api("root", "GET", "/v1/audit").json()]
    assert ("root", "roots.add", "ok") in audit and ("root", "roots.rm", "ok") in audit
    assert ("ann", "roots.add", "403") in audit


def test_what_is_not_a_path_is_not_confined(api) -> None:  # noqa: F811
    hub = train(model={"name": "HuggingFaceTB/SmolLM2-135M", "task": "causal-lm"}, data={"label_column": None},
                tracking={"uri": "http://mlflow:5000"})
    assert api("ann", "POST", "/v1/jobs", json=hub).status_code == 201, "hub ids, hf: data and http URIs"
    argv = command(run=["cat", "/etc/hostname"], env={"CONFIG": "/etc/app.conf"})
    assert api("ann", "POST", "/v1/jobs", json=argv).status_code == 201, "a command's argv and env are its own"
    assert api("root", "POST", "/v1/jobs", json=train(output="/tmp/admin-run")).status_code == 201, "admins"
