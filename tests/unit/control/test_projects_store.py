"""Projects in the state store (SQLite and PostgreSQL): a token's owner becomes a user with a
project of its own, membership and grants decide a submission, and the stored quotas are the
owners the scheduling loop reads."""

from __future__ import annotations

import pytest
from tests.unit.control.conftest import command

from llmos.control._auth import Caller, create_token
from llmos.control._db import read, write
from llmos.control._errors import Forbidden, NotFound, Rejected
from llmos.control._projects import owners
from llmos.scheduler import Owner, Quota

ROOT = Caller("root", "admin", "test")


def test_membership_grants_and_quotas(service) -> None:
    with write(service.engine) as conn:
        create_token(conn, name="ann", owner="ann", role="developer")
    ann, admin = Caller("ann", "developer", "test"), service.project_admin
    assert [p["name"] for p in admin.list(ann)] == ["ann"]  # a project of its own, where it develops
    assert service.job(service.submit(ann, command("true"))["id"])["project"] == "ann"
    admin.create(ROOT, "nlp")
    with pytest.raises(Forbidden, match="not a member of project nlp"):
        service.submit(ann, command("true"), project="nlp")
    with pytest.raises(NotFound, match="no project nope"):
        service.submit(ann, command("true"), project="nope")
    with pytest.raises(Rejected, match="no user zed"):
        admin.add_member(ROOT, "nlp", "zed", "developer")
    admin.add_member(ROOT, "nlp", "ann", "viewer")
    with pytest.raises(Forbidden, match="ann is a viewer of project nlp"):
        service.submit(ann, command("true"), project="nlp")
    admin.add_member(ROOT, "nlp", "ann", "developer")
    with pytest.raises(Forbidden, match="not granted the high priority class"):
        service.submit(ann, command("true"), project="nlp", priority="high")
    admin.grant(ROOT, "nlp", "high")
    assert service.submit(ann, command("true"), project="nlp", priority="high")["state"] == "QUEUED"
    with pytest.raises(Rejected, match="bad quota"):
        admin.set_quota(ROOT, "nlp", {"cap_cpus": -1.0})
    admin.set_quota(ROOT, "nlp", {"cap_cpus": 1.0, "guarantee_gpus": 0.0, "weight": 2.0})
    with read(service.engine) as conn:
        stored = {o.name: o for o in owners(conn)}
    assert stored["nlp"] == Owner("nlp", weight=2.0, guarantee=Quota(gpus=0.0), cap=Quota(cpus=1.0))
    assert stored["ann"] == Owner("ann")
    admin.set_quota(ROOT, "nlp", {}, clear=True)
    with read(service.engine) as conn:
        assert {o.name: o for o in owners(conn)}["nlp"] == Owner("nlp")
    assert admin.show(ann, "nlp")["members"] == [{"user": "ann", "role": "developer"}]
    admin.remove_member(ROOT, "nlp", "ann")
    with pytest.raises(Forbidden):
        admin.show(ann, "nlp")


def test_a_new_user_named_like_a_teams_project_is_not_made_its_member(service) -> None:
    service.project_admin.create(ROOT, "team")
    with write(service.engine) as conn:
        create_token(conn, name="t", owner="team", role="developer")
    intruder = Caller("team", "developer", "test")
    with pytest.raises(Forbidden, match="not a member of project team"):
        service.submit(intruder, command("true"))
    assert service.project_admin.list(intruder) == []


def test_the_upgrade_makes_each_token_owner_a_user_with_its_own_project(tmp_path) -> None:
    """The 0.1.0 store: tokens of admin and ann (developer), a job of ann's counted against `nlp`,
    a deployment of admin's."""
    import sqlite3
    from pathlib import Path

    from sqlalchemy import select

    from llmos.control._db import open_db
    from llmos.control._schema import deployments, members, projects, users

    path = tmp_path / "state.db"
    with sqlite3.connect(path) as con:
        con.executescript((Path(__file__).parent / "data" / "state-0.1.0.sql").read_text())
    engine = open_db(f"sqlite:///{path}")
    with read(engine) as conn:
        assert [tuple(r) for r in conn.execute(select(users.c.name, users.c.default_project).order_by(users.c.name))
                ] == [("admin", "admin"), ("ann", "ann")]
        assert [r.name for r in conn.execute(select(projects.c.name).order_by(projects.c.name))] == [
            "admin", "ann", "nlp"]
        assert sorted(tuple(r) for r in conn.execute(select(members))) == [
            ("admin", "admin", "admin"), ("ann", "ann", "developer")]
        assert conn.execute(select(deployments.c.project)).scalar_one() == "admin"
    engine.dispose()
