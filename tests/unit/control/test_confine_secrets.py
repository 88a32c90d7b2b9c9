"""The pure parts of confined paths and secrets: which spec strings are paths, what is outside the
roots, where secret references may go, env masking, log redaction at chunk edges, DB passwords."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmos.control._confine import as_path, outside, spec_paths
from llmos.control._db import database_url, split_password
from llmos.control._logfiles import redact
from llmos.control._secret_refs import masked_spec, references, resolve_env
from llmos.spec import CommandJob, validate_dict


def test_the_walk_finds_every_path_and_nothing_else() -> None:
    job = validate_dict({"kind": "train", "name": "t", "output": "/etc/x",
                         "model": {"name": "/models/../etc/m", "task": "classification"},
                         "data": {"train": "/etc/shadow", "eval": "hf:imdb", "label_column": "label"},
                         "distill": {"teacher": "../../teacher"},
                         "tracking": {"uri": "sqlite:////var/mlflow.db", "experiment": "/Users/x"},
                         "register": {"name": "sentiment", "alias": "candidate", "description": "/not/a/path"}})
    assert dict(spec_paths(job)) == {"output": "/etc/x", "model.name": "/models/../etc/m", "data.train": "/etc/shadow",
                                     "distill.teacher": "../../teacher", "tracking.uri": "/var/mlflow.db",
                                     "tracking.experiment": "/Users/x"}
    hub = validate_dict({"kind": "train", "model": {"name": "HuggingFaceTB/SmolLM2-135M"},
                         "data": {"train": "hf:imdb", "label_column": "label"}, "tracking": {"uri": "http://m:5000"}})
    assert list(spec_paths(hub)) == []
    cmd = CommandJob.model_validate({"run": ["cat", "/etc/shadow"], "env": {"A": "/etc"}, "cwd": "/etc"})
    assert list(spec_paths(cmd)) == [("cwd", "/etc")]  # argv and env are the program's, not the daemon's


@pytest.mark.parametrize(("text", "path"), [
    ("sentiment@production", None), ("reviews/3", None), ("org/model", None), ("hf:imdb", None),
    ("models:/m/1", None), ("https://x/y", None), ("minilm-l6", None), ("/etc/x", "/etc/x"), ("~/x", "~/x"),
    ("./a", "./a"), ("a/../../b", "a/../../b"), ("..", ".."), ("file:///etc/x", "/etc/x"),
    ("sqlite:///rel.db", "rel.db"),
])
def test_which_strings_are_paths(text: str, path: str | None) -> None:
    assert as_path(text) == path


def test_in_a_stage_s_raw_spec_a_file_key_s_relative_name_is_a_path() -> None:
    assert as_path("dev.csv", file_key=True) == "dev.csv" and as_path("dev.csv") is None
    assert as_path("hf:imdb", file_key=True) is None and as_path("${stages.tr.model}", file_key=True) is None


def test_outside_is_after_resolution() -> None:
    roots = [Path("/h/projects/a"), Path("/data/a")]
    paths = [("output", Path("/h/projects/a/run")), ("data.train", Path("/h/projects/ab/x")),
             ("data.eval", Path("/data/a")), ("cwd", Path("/etc"))]
    assert outside(paths, roots) == [("data.train", Path("/h/projects/ab/x")), ("cwd", Path("/etc"))]


def test_secret_references_go_in_env_values_only() -> None:
    job = CommandJob.model_validate({"run": ["sh", "-c", "echo ${secret:X}"], "cwd": "/w/${secret:Y}",
                                     "env": {"A": "${secret:HF_TOKEN}", "B": "Bearer ${secret:API} x",
                                             "C": "${secret:bad-name}", "D": "plain"}})
    uses, problems = references(job)
    assert uses == [("env.A", "HF_TOKEN"), ("env.B", "API")]
    assert [p for p, _ in problems] == ["run.2", "env.C", "cwd"]
    assert "only in env values" in problems[0][1] and "not a secret name" in problems[1][1]
    assert resolve_env({"A": "${secret:T}", "B": "Bearer ${secret:T}!", "C": "x"}, {"T": "s$1\\g<0>"}) == {
        "A": "s$1\\g<0>", "B": "Bearer s$1\\g<0>!", "C": "x"}  # values are never read as patterns


def test_env_values_are_masked_except_secret_references() -> None:
    spec = {"kind": "command", "run": ["x"], "env": {"API_KEY": "sk-live-1", "T": "${secret:T}", "M": "a${secret:T}"}}
    assert masked_spec(spec) == {"kind": "command", "run": ["x"], "env": {"API_KEY": "***", "T": "${secret:T}",
                                                                          "M": "***"}}
    train = {"tracking": {"uri": "http://me:pw@mlflow:5000"}, "model": {"name": "org/m"}}
    assert masked_spec(train) == {"tracking": {"uri": "http://me:***@mlflow:5000"}, "model": {"name": "org/m"}}


S = [b"hunter22"]


@pytest.mark.parametrize(("data", "lo", "limit", "want"), [
    (b"abc hunter22 def hunter22", 0, 100, (b"abc *** def ***", 25)),
    (b"abc hunter22 def", 6, 100, (b"*** def", 16)),  # an offset inside a secret: its rest is hidden too
    (b"abc hunter22 def", 0, 6, (b"abc ***", 12)),  # a chunk edge inside a secret: the chunk takes all of it
    (b"log: hun", 0, 100, (b"log: ***", 8)),  # the job is still writing it
    (b"log: hu", 0, 100, (b"log: hu", 7)),  # two bytes are not taken for a secret
    (b"xx", 5, 100, (b"", 5)),  # past the end
])
def test_redaction_at_chunk_edges(data: bytes, lo: int, limit: int, want: tuple[bytes, int]) -> None:
    assert redact(data, lo, limit, S) == want


def test_database_passwords_stay_out_of_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert split_password("postgresql://u:p%40ss@127.0.0.1:5432/test") == ("postgresql://u@127.0.0.1:5432/test", "p@ss")
    assert split_password("postgresql://u@h/db") == ("postgresql://u@h/db", None)
    monkeypatch.delenv("LLMOS_DB_PASSWORD", raising=False)
    secret = tmp_path / "pw"
    secret.write_text("s3cr@t/\n")
    secret.chmod(0o644)
    with pytest.raises(Exception, match="chmod 600"):
        database_url("postgresql://u@h/db", str(secret))
    secret.chmod(0o600)
    assert database_url("postgresql://u@h/db", str(secret)) == "postgresql://u:s3cr%40t%2F@h/db"
    monkeypatch.setenv("LLMOS_DB_PASSWORD", "env")
    assert database_url("postgresql://u@h/db", str(secret)) == "postgresql://u:env@h/db"
    assert database_url("postgresql://u:url@h/db") == "postgresql://u:url@h/db"
    assert os.environ["LLMOS_DB_PASSWORD"] == "env" and database_url(None) is None


def test_the_database_url_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmos.control._config import load_config

    monkeypatch.setenv("LLMOS_DB", "postgresql://u:pw@h:5432/db")
    assert load_config().db == "postgresql://u:pw@h:5432/db"
    assert load_config(db="sqlite:////tmp/x.db").db == "sqlite:////tmp/x.db"  # --db wins


def test_default_roots_per_project_and_cluster_storage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from llmos.control._confine import default_roots

    monkeypatch.setenv("LLMOS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMOS_STORAGE", raising=False)
    assert default_roots("nlp") == [tmp_path / "home" / "projects" / "nlp"]
    monkeypatch.setenv("LLMOS_STORAGE", str(tmp_path / "shared"))
    assert default_roots("nlp")[1] == tmp_path / "shared" / "projects" / "nlp"
    assert default_roots("../control") == default_roots("..") == []  # a name is one folder, never a way up
