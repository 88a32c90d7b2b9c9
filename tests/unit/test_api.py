"""The Python front door without running anything heavy: `import llmos` stays light, the names
load lazily, overrides become dotted spec keys, and specs of the wrong kind are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import llmos
from llmos.api import Deployment, Job, JobDetails, as_dotted, compress_job, serve_job, train_job
from llmos.errors import SpecError

HEAVY = ("torch", "transformers", "mlflow", "pandas", "matplotlib", "httpx", "pydantic", "sqlalchemy", "fastapi")


def test_import_llmos_loads_nothing_heavy() -> None:
    code = ("import sys, llmos\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
            "assert callable(llmos.train) and callable(llmos.compress) and callable(llmos.serve)\n"
            "llmos.Client, llmos.TrainResult\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    bare, used = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.splitlines()
    assert bare == "[]"
    assert used == "['pydantic']"  # llmos.compress, the package behind the callable, validates with it


def test_compress_and_serve_are_both_callable_and_the_packages() -> None:
    from llmos.compress import RECIPE_NAMES

    assert "int8" in RECIPE_NAMES and callable(llmos.compress) and llmos.compress.RECIPE_NAMES is RECIPE_NAMES
    assert callable(llmos.serve) and hasattr(llmos.serve, "form_batch")
    assert {"train", "compress", "serve", "Client"} <= set(dir(llmos))
    with pytest.raises(AttributeError):
        llmos.nothing_here  # noqa: B018


def test_overrides_are_spec_keys_and_sections_merge() -> None:
    assert as_dotted({"train": {"lr": 3e-5, "epochs": 2}, "output": Path("runs/x"), "recipe": ["int8", "bf16"],
                      "checkpoint": {"every_steps": None}}, ["resources.procs=2"]) == [
        "train.lr=3e-05", "train.epochs=2", "output=\"runs/x\"", "recipe=[\"int8\", \"bf16\"]",
        "checkpoint.every_steps=null", "resources.procs=2"]


def test_jobs_from_files_mappings_and_models_with_overrides(tmp_path: Path, sentiment_csv) -> None:
    train_csv, test_csv = sentiment_csv
    spec = {"data": {"train": str(train_csv), "eval": str(test_csv)}, "train": {"lr": 1e-3}}
    job = train_job(spec, as_dotted({"train": {"epochs": 3}}))
    assert job.train.lr == 1e-3 and job.train.epochs == 3  # the section kept its other keys
    path = tmp_path / "job.yaml"
    path.write_text(f"data: {{train: {train_csv}}}\n")
    assert train_job(path, ["train.lr=0.5"]).train.lr == 0.5
    assert train_job(job, []) is job and train_job(job, ["train.lr=0.25"]).train.lr == 0.25
    assert compress_job("reviews@candidate", as_dotted({"recipe": ["int8"]})).model == "reviews@candidate"
    served = serve_job("reviews/2", None, as_dotted({"server": {"port": 0}}))
    assert served.name == "reviews" and served.server.port == 0


def test_wrong_kind_and_bad_values_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text("kind: serve\nmodel: reviews@prod\n")
    with pytest.raises(SpecError, match="a 'serve' spec; this runs kind: train") as caught:
        train_job(path, [])
    assert "llmos spec example train" in caught.value.hint
    with pytest.raises(SpecError) as bad:
        compress_job("reviews@candidate", as_dotted({"recipe": ["int8"], "gate": {"min_speedup": "fast"}}))
    assert "gate.min_speedup" in str(bad.value)
    with pytest.raises(SpecError, match="expected a spec file, a mapping"):
        train_job(42, [])


def test_records_come_from_the_rest_json_and_go_back() -> None:
    job = Job.from_dict({"id": 3, "name": "t", "kind": "train", "state": "RUNNING", "new_field": 1,
                         "placement": {"cores": [0], "gpus": []}})
    assert job.id == 3 and not job.done and job.to_dict()["placement"] == {"cores": [0], "gpus": []}
    details = JobDetails.from_dict({"id": 3, "name": "t", "kind": "train", "state": "FAILED", "spec": {"kind": "train"},
                                    "transitions": [{"at_s": 1.0, "from": None, "to": "QUEUED", "attempt": 0,
                                                     "reason": "submitted"}],
                                    "attempts": [{"number": 1, "started_s": 2.0}], "logs": []})
    assert details.done and details.transitions[0].to == "QUEUED" and details.attempts[0].number == 1
    d = Deployment.from_dict({"name": "tiny", "url": "http://x", "replicas": [
        {"id": "r1", "pid": 1, "port": 2, "version": "tiny/1", "state": "ready", "cores": [0]}]})
    assert d.replicas[0].state == "ready" and d.to_dict()["replicas"][0]["id"] == "r1"


def test_client_without_a_daemon_says_how_to_start_one() -> None:
    from llmos.control import NotRunning

    with pytest.raises(NotRunning) as caught:
        llmos.Client()
    assert "llmos up" in caught.value.hint
