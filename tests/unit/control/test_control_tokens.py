"""Tokens: listing without secrets, revocation (refused at once, never the last admin token),
`last_used_s`, the admin token file after a revocation, and a database made before these columns."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from llmos.control._app import create_app
from llmos.control._auth import (
    TokenState,
    create_token,
    ensure_admin_token,
    list_tokens,
    revocation_error,
    revoke_token,
    verify,
)
from llmos.control._db import read, write
from llmos.control._errors import Conflict, NotFound, Unauthorized


def test_revocation_rules_are_a_pure_function() -> None:
    admin, viewer, other_admin = TokenState(1, "admin", False), TokenState(2, "viewer", False), TokenState(
        3, "admin", False)
    assert revocation_error(2, [admin, viewer]) is None
    assert revocation_error(1, [admin, other_admin]) is None
    last = revocation_error(1, [admin])
    assert isinstance(last, Conflict) and "last admin token" in last.message and "--role admin" in last.hint
    # an admin token revoked earlier does not count as a second admin
    assert isinstance(revocation_error(1, [admin, TokenState(3, "admin", True)]), Conflict)
    again = revocation_error(2, [admin, TokenState(2, "viewer", True)])
    assert isinstance(again, Conflict) and "already revoked" in again.message
    assert isinstance(revocation_error(9, [admin]), NotFound)


def test_revoked_token_is_refused_and_kept(engine) -> None:
    with write(engine) as conn:
        root = create_token(conn, name="root", owner="root", role="admin", now_s=100.0)
        ci = create_token(conn, name="ci", owner="bot", role="viewer", now_s=200.0)
    with read(engine) as conn:
        listed = list_tokens(conn)
    assert [(t["id"], t["name"], t["owner"], t["role"], t["created_s"]) for t in listed] == [
        (1, "root", "root", "admin", 100.0), (2, "ci", "bot", "viewer", 200.0)]
    assert listed[1]["prefix"] == ci[:12] and ci.startswith(listed[1]["prefix"])
    assert all(t["revoked_s"] is None and t["last_used_s"] is None for t in listed)
    assert not {"digest", "token"} & set(listed[0]) and all(ci not in str(v) for v in listed[1].values())

    with write(engine) as conn:
        gone = revoke_token(conn, 2, now_s=300.0)
    assert gone["id"] == 2 and gone["revoked_s"] == 300.0 and gone["role"] == "viewer"
    with read(engine) as conn:
        with pytest.raises(Unauthorized, match="was revoked"):
            verify(conn, ci, "test")
        assert verify(conn, root, "test").role == "admin"
        assert [t["id"] for t in list_tokens(conn)] == [1]
        assert [t["revoked_s"] for t in list_tokens(conn, include_revoked=True)] == [None, 300.0]
    with write(engine) as conn, pytest.raises(Conflict, match="already revoked"):
        revoke_token(conn, 2, now_s=301.0)
    with write(engine) as conn, pytest.raises(Conflict, match="last admin token"):
        revoke_token(conn, 1, now_s=302.0)
    with write(engine) as conn, pytest.raises(NotFound):
        revoke_token(conn, 42, now_s=303.0)
    with read(engine) as conn:  # the refused revocations changed nothing
        assert verify(conn, root, "test").role == "admin"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rest_list_revoke_and_audit(service) -> None:
    with write(service.engine) as conn:
        tokens = {who: create_token(conn, name=who, owner=who, role=role)
                  for who, role in (("root", "admin"), ("ann", "developer"), ("vic", "viewer"))}
    client = TestClient(create_app(service, {"pid": 1}))

    def call(who: str, method: str, path: str):
        return client.request(method, path, headers={"Authorization": f"Bearer {tokens[who]}"})

    assert call("vic", "GET", "/v1/jobs").status_code == 200  # cached as valid from here on
    listed = call("root", "GET", "/v1/tokens")
    assert listed.status_code == 200 and [t["name"] for t in listed.json()] == ["root", "ann", "vic"]
    assert all(tokens[t["name"]] not in listed.text for t in listed.json())
    assert call("ann", "GET", "/v1/tokens").status_code == 403
    assert call("ann", "POST", "/v1/tokens/3/revoke").status_code == 403

    revoked = call("root", "POST", "/v1/tokens/3/revoke")
    assert revoked.status_code == 200 and revoked.json()["name"] == "vic" and "digest" not in revoked.json()
    refused = call("vic", "GET", "/v1/jobs")  # at once, although the daemon had it cached
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]
    last = call("root", "POST", "/v1/tokens/1/revoke")
    assert last.status_code == 409 and "last admin token" in last.json()["error"]
    assert call("root", "POST", "/v1/tokens/99/revoke").status_code == 404
    assert [t["name"] for t in call("root", "GET", "/v1/tokens").json()] == ["root", "ann"]
    assert [t["name"] for t in call("root", "GET", "/v1/tokens?all=true").json()] == ["root", "ann", "vic"]

    audit = [(a["actor"], a["action"], a["target"], a["outcome"]) for a in reversed(call("root", "GET", "/v1/audit")
                                                                                     .json())]
    assert audit == [("root", "tokens.list", "tokens", "ok"), ("ann", "tokens.list", "tokens", "403"),
                     ("ann", "tokens.revoke", "token 3", "403"), ("root", "tokens.revoke", "token 3", "ok"),
                     ("anonymous", "GET /v1/jobs", "/v1/jobs", "401"),  # the revoked token, refused and audited
                     ("root", "tokens.revoke", "token 1", "409"), ("root", "tokens.revoke", "token 99", "404"),
                     ("root", "tokens.list", "tokens", "ok"), ("root", "tokens.list", "tokens", "ok")]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_last_used_is_recorded(service) -> None:
    with write(service.engine) as conn:
        token = create_token(conn, name="ann", owner="ann", role="developer")
        create_token(conn, name="idle", owner="idle", role="viewer")
    assert service.caller(token, "test").owner == "ann"
    with read(service.engine) as conn:
        used = {t["name"]: t["last_used_s"] for t in list_tokens(conn)}
    assert used["ann"] is not None and used["idle"] is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_revoked_admin_token_file_is_replaced_at_start(engine, tmp_path) -> None:
    path = tmp_path / "admin.token"
    ensure_admin_token(engine, path)
    first = path.read_text().strip()
    with write(engine) as conn:
        create_token(conn, name="second", owner="root", role="admin")
        revoke_token(conn, 1, now_s=1.0)
    ensure_admin_token(engine, path)  # what `llmos up` does
    second = path.read_text().strip()
    assert second != first and path.stat().st_mode & 0o777 == 0o600
    with read(engine) as conn:
        assert verify(conn, second, "test").role == "admin"
        with pytest.raises(Unauthorized):
            verify(conn, first, "test")
    ensure_admin_token(engine, path)  # a valid file is kept
    assert path.read_text().strip() == second


def test_a_database_from_before_the_new_columns_is_upgraded(engine, db_url: str) -> None:
    from sqlalchemy import text

    from llmos.control._auth import digest
    from llmos.control._db import open_db

    with write(engine) as conn:  # the tokens table as an older llmos made it, before versioned migrations
        for column in ("prefix", "last_used_s", "revoked_s"):
            conn.execute(text(f"ALTER TABLE tokens DROP COLUMN {column}"))
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text("INSERT INTO tokens (name, owner, role, digest, created_s) VALUES "
                          "('old', 'old', 'admin', :digest, 1.0)"), {"digest": digest("llmos_old")})
    upgraded = open_db(db_url)
    try:
        with read(upgraded) as conn:
            assert verify(conn, "llmos_old", "test").owner == "old"
            assert list_tokens(conn)[0]["prefix"] is None
        with write(upgraded) as conn:
            create_token(conn, name="new", owner="new", role="admin")
            revoke_token(conn, 1, now_s=2.0)
        with read(upgraded) as conn, pytest.raises(Unauthorized, match="revoked"):
            verify(conn, "llmos_old", "test")
    finally:
        upgraded.dispose()
