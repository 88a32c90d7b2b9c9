"""The pure decisions of job isolation and remote access, with literals (docs/security.md)."""

from __future__ import annotations

import pytest

from llmos.control._isolation import choose, token_refusal
from llmos.control._login import same_fingerprint
from llmos.control._remote import Login, Target, pick
from llmos.control._tls import is_loopback, serving_plan
from llmos.errors import LlmosError
from llmos.executor._sandbox import blocked_ancestor, job_environ, project_user, view

OPEN, CLOSED = 0o40755, 0o40700  # st_mode of a folder anyone may cross / only its owner may
MODES = {"/": OPEN, "/root": CLOSED, "/root/.pyenv": OPEN, "/tmp": OPEN, "/tmp/pytest-of-root": CLOSED,
         "/tmp/pytest-of-root/p1": CLOSED, "/srv": OPEN, "/srv/home": OPEN, "/srv/home/control": CLOSED}


def mode_of(path: str) -> int:
    return MODES.get(path, OPEN)


def test_project_users_are_safe_distinct_names() -> None:
    assert project_user("nlp") == "llmos-nlp"
    odd, upper = project_user("NLP team/α"), project_user("nlp team")
    assert odd.startswith("llmos-nlp-team-") and odd != upper and len(odd) <= 32
    long = project_user("a" * 80)
    assert len(long) <= 32 and long != project_user("a" * 81)


def test_a_job_environment_carries_no_daemon_secret() -> None:
    env = {"PATH": "/bin", "LLMOS_HOME": "/h", "LLMOS_TRACKING_URI": "sqlite:///x", "LLMOS_TOKEN": "llmos_x",
           "LLMOS_DB": "postgresql://u:p@h/db", "LLMOS_DB_PASSWORD": "p", "PGPASSWORD": "p", "LLMOS_ADDRESS": "u",
           "HF_TOKEN": "hf", "AWS_SECRET_ACCESS_KEY": "k", "OPENAI_API_KEY": "sk", "MY_PASSWORD": "p", "HOME": "/root"}
    assert job_environ(env) == {"PATH": "/bin", "LLMOS_HOME": "/h", "LLMOS_TRACKING_URI": "sqlite:///x",
                                "AWS_SECRET_ACCESS_KEY": "k", "HOME": "/root"}


def test_the_outermost_folder_a_stranger_cannot_cross() -> None:
    assert blocked_ancestor("/tmp/pytest-of-root/p1/home", mode_of) == "/tmp/pytest-of-root"
    assert blocked_ancestor("/root/.pyenv/versions/3.11", mode_of) == "/root"
    assert blocked_ancestor("/srv/home/runs/a", mode_of) is None
    assert blocked_ancestor("/srv/home/control", mode_of) is None  # the folder itself is not on the way


def test_view_hides_control_and_reveals_only_what_the_job_needs() -> None:
    home = "/tmp/pytest-of-root/p1/home"
    hide, reveal = view([f"{home}/control"], [f"{home}/control/jobs/3/attempt-1", home, "/root/.pyenv/versions/3.11",
                                              "/srv/venv", f"{home}/runs/a-3"], mode_of)
    # outermost first: the shim lays the tmpfs over /root and pytest's root before the home's control/
    assert hide == ("/root", "/tmp/pytest-of-root", f"{home}/control")
    # runs/a-3 is visible through the home, mounted back whole; /srv/venv was never hidden
    assert reveal == ("/root/.pyenv/versions/3.11", home, f"{home}/control/jobs/3/attempt-1")
    hide, reveal = view(["/srv/home/control"], ["/srv/home/control/jobs/1/attempt-1", "/srv/home"], mode_of)
    assert hide == ("/srv/home/control",) and reveal == ("/srv/home/control/jobs/1/attempt-1",)


@pytest.mark.parametrize(("requested", "root", "works", "mode"), [
    ("auto", True, {"users": True, "sandbox": True}, "users"),
    ("auto", False, {"sandbox": True}, "sandbox"),
    ("auto", True, {"users": False, "sandbox": True}, "none"),  # root in a user namespace could undo it
    ("auto", False, {}, "none"),
    ("trusted", False, {}, "trusted"),
    ("none", True, {"users": True}, "none"),
])
def test_isolation_mode(requested: str, root: bool, works: dict, mode: str) -> None:
    assert choose(requested, root, works) == mode


def test_on_a_ray_cluster_nothing_is_isolated_yet() -> None:
    assert choose("auto", True, {"users": True}, cluster=True) == "none"
    assert choose("trusted", True, {}, cluster=True) == "trusted"


def test_without_isolation_only_admin_tokens_are_made() -> None:
    refusal = token_refusal("none", "developer")
    assert refusal is not None and refusal.status == 403 and "isolation: trusted" in refusal.hint
    assert token_refusal("none", "admin") is None
    assert token_refusal("users", "viewer") is None and token_refusal("trusted", "developer") is None


def test_tls_beyond_loopback_unless_insecure_http() -> None:
    assert serving_plan("127.0.0.1", None, None, False).scheme == "http"
    assert serving_plan("::1", None, None, False).scheme == "http" and is_loopback("localhost")
    own = serving_plan("0.0.0.0", None, None, False)
    assert own.scheme == "https" and own.self_signed
    given = serving_plan("10.0.0.5", "/c.pem", "/k.pem", False)
    assert (given.scheme, given.cert, given.self_signed) == ("https", "/c.pem", False)
    plain = serving_plan("10.0.0.5", None, None, True)
    assert plain.scheme == "http" and "WARNING" in (plain.warning or "")
    with pytest.raises(LlmosError, match="go together"):
        serving_plan("10.0.0.5", "/c.pem", None, False)


def test_fingerprints_compare_however_written() -> None:
    fp = ":".join(["AB"] * 32)
    assert same_fingerprint(fp.lower().replace(":", ""), fp) and same_fingerprint(fp, fp)
    assert not same_fingerprint("AB:AB", fp) and not same_fingerprint(":".join(["AC"] * 32), fp)


def test_which_control_plane_a_client_uses() -> None:
    login = Login("https://box:8470", "llmos_login", "/cfg/ca.pem")
    local = {"url": "http://127.0.0.1:8470", "tls": None}
    assert pick("https://box:8470/", None, None, login, local, "adm") == Target("https://box:8470", "llmos_login",
                                                                                  "/cfg/ca.pem")
    assert pick("https://other:1", None, None, login, local, "adm") == Target("https://other:1", None, None)
    assert pick(None, "llmos_env", None, login, local, "adm") == Target("https://box:8470", "llmos_env", "/cfg/ca.pem")
    assert pick(None, None, None, None, local, "adm") == Target("http://127.0.0.1:8470", "adm", None)
    tls = {"url": "https://127.0.0.1:1", "tls": {"cert": "/h/control/tls/cert.pem"}}
    assert pick(None, None, None, None, tls, "adm").ca_cert == "/h/control/tls/cert.pem"
    assert pick(None, None, None, None, None, None) is None
