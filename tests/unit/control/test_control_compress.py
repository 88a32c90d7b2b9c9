"""`kind: compress` jobs on the control plane: checked before they are queued (every problem at
once), sized by `resources`, stored with an explicit name and a work folder of their own, and
started as one `python -m llmos.run` process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from llmos.control._app import create_app
from llmos.control._auth import create_token
from llmos.control._db import write
from llmos.control._submit import Request, load_submission, request_of, validate_submission
from llmos.errors import SpecError


@pytest.fixture
def eval_csv(tmp_path: Path) -> Path:
    path = tmp_path / "dev.csv"
    path.write_text("text,label\ngreat film,positive\nawful film,negative\n")
    return path


def compress_spec(eval_csv: Path, **extra) -> dict:
    return {"kind": "compress", "model": "reviews@candidate", "recipe": ["int8"], "eval": str(eval_csv), **extra}


def test_submission_is_explicit_and_sized(eval_csv: Path, tmp_path: Path) -> None:
    job = validate_submission(compress_spec(eval_csv, resources={"cpus": 2, "memory_gb": 3}))
    assert job.name == "reviews"  # null means the parent's name: now written out
    assert request_of(job) == Request(workers=1, cpus=2, memory_gb=3.0, gpus=0)
    assert request_of(validate_submission(compress_spec(eval_csv))) == Request(1, 1, 0.0, 0)
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "job.yaml").write_text("kind: compress\nmodel: reviews/1\nrecipe: int8\neval: ../dev.csv\n")
    loaded = load_submission(tmp_path / "spec" / "job.yaml", ["name=small"])
    assert loaded.name == "small" and loaded.eval == str(eval_csv)


def test_every_problem_at_once(eval_csv: Path, tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "report.json").write_text("{}")
    bad = {"kind": "compress", "model": "re views", "recipe": ["int8"], "output": str(tmp_path / "used"),
           "report": {"num_threads": 4}, "resources": {"cpus": 2}}
    with pytest.raises(SpecError) as err:
        validate_submission(bad)
    assert [path for path, _ in err.value.problems] == ["eval", "model", "output", "report.num_threads"]
    with pytest.raises(SpecError) as err:
        validate_submission(compress_spec(eval_csv, resources={"cpus": 0}))
    assert err.value.problems[0][0] == "resources.cpus"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rest_submission_stores_a_runnable_job(service, eval_csv: Path, llmos_home: Path) -> None:
    from llmos.executor import kind_of
    from llmos.spec import CompressJob, validate_dict

    with write(service.engine) as conn:
        token = create_token(conn, name="ann", owner="ann", role="developer")
        from llmos.control._auth import Caller
        from llmos.control._roots import add_root

        add_root(conn, Caller("root", "admin"), "ann", str(eval_csv.parent))  # ann's data is outside LLMOS_HOME
    client = TestClient(create_app(service, {"pid": 1}))
    auth = {"Authorization": f"Bearer {token}"}
    made = client.post("/v1/jobs", headers=auth, json={"spec": compress_spec(eval_csv, resources={"cpus": 2})})
    assert made.status_code == 201, made.text
    job = client.get(f"/v1/jobs/{made.json()['id']}", headers=auth).json()
    assert (job["kind"], job["name"], job["workers"], job["cpus"], job["gpus"]) == ("compress", "reviews", 1, 2, 0)
    assert job["run_dir"] == str(llmos_home / "runs" / f"reviews-{job['id']}")
    assert job["spec"]["output"] == job["run_dir"] and job["spec"]["name"] == "reviews"
    too_big = client.post("/v1/jobs", headers=auth, json={"spec": compress_spec(eval_csv, resources={"cpus": 3})})
    assert too_big.status_code == 422 and "3 CPUs" in too_big.json()["error"]

    # what the executor starts: one `python -m llmos.run` on a job file in the attempt folder
    stored = validate_dict(job["spec"])
    folder = llmos_home / "attempt-1"
    folder.mkdir()
    program = kind_of(stored).program(stored, 2, folder)
    argv, env, cwd = program.argv, program.env, program.cwd
    assert argv == [sys.executable, "-m", "llmos.run", str(folder / "job.json")] and env == {} and cwd == folder
    assert CompressJob.model_validate(json.loads((folder / "job.json").read_text())) == stored
