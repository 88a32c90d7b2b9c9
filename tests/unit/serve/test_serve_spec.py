"""The `kind: serve` spec (a contract other packages import) and how `llmos serve` builds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmos.cli.main import app
from llmos.errors import SpecError
from llmos.spec import AutoscaleSpec, ReplicaResources, ReplicasSpec, ServeJob, example_yaml, load_job, validate_dict

runner = CliRunner()


def test_contract_defaults() -> None:
    job = validate_dict({"kind": "serve", "model": "sentiment@production"})
    assert isinstance(job, ServeJob)
    assert job.replicas == ReplicasSpec(min=1, max=1)
    assert job.autoscale == AutoscaleSpec(target_outstanding=4.0, max_p95_ms=None, upscale_cooldown_s=10,
                                          downscale_cooldown_s=60)
    assert job.resources == ReplicaResources(cpus=1, memory_gb=None, gpus=0)


def test_every_problem_at_once_with_dotted_paths() -> None:
    with pytest.raises(SpecError) as info:
        validate_dict({"kind": "serve", "model": "not a ref!", "replicas": {"min": 3, "max": 2},
                       "batching": {"max_batch_size": 0}, "limits": {"max_queu": 5}})
    text = str(info.value)
    assert "model: expected a registry reference" in text
    assert "replicas: replicas.max (2) must be at least replicas.min (3)" in text
    assert "batching.max_batch_size" in text
    assert "limits.max_queu: unknown field; did you mean 'max_queue'?" in text


def test_queue_must_hold_a_batch() -> None:
    with pytest.raises(SpecError, match=r"limits.max_queue \(4\) must be at least batching.max_batch_size \(32\)"):
        validate_dict({"kind": "serve", "model": "m", "limits": {"max_queue": 4}})


def test_example_is_a_valid_spec(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(example_yaml("serve"))
    job = load_job(path)
    assert isinstance(job, ServeJob) and job.model == "sentiment@production"


def test_cli_flags_and_overrides_become_spec_fields(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "reviews@production", "--port", "0", "--max-batch-size", "8",
                                 "--max-wait-ms", "2", "limits.max_inputs=16", "--print-job"])
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert job["name"] == "reviews" and job["model"] == "reviews@production"
    assert job["server"]["port"] == 0 and job["batching"]["max_batch_size"] == 8
    assert job["batching"]["max_wait_ms"] == 2 and job["limits"]["max_inputs"] == 16
    # the printed job is what python -m llmos.serve JOB.json reads
    assert isinstance(validate_dict(job), ServeJob)


def test_cli_spec_file_with_flags_on_top(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text("kind: serve\nmodel: reviews/3\nbatching: {max_batch_size: 4}\nlimits: {max_queue: 64}\n")
    result = runner.invoke(app, ["serve", "--spec", str(path), "--max-queue", "32", "--print-job"])
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert job["model"] == "reviews/3" and job["name"] == "reviews"
    assert job["batching"]["max_batch_size"] == 4 and job["limits"]["max_queue"] == 32


def test_cli_bad_flag_value_names_the_field() -> None:
    result = runner.invoke(app, ["serve", "reviews@production", "--max-batch-size", "0", "--print-job"])
    assert result.exit_code != 0
    assert isinstance(result.exception, SpecError)
    assert "batching.max_batch_size" in str(result.exception)


@pytest.mark.parametrize(("given", "expected"), [(None, "10000"), ("300000", "300000")])
def test_the_server_sets_openmp_spinning_unless_the_user_did(given: str | None, expected: str) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "LLMOS_OPENMP_ROLE")}
    if given is not None:
        env["GOMP_SPINCOUNT"] = given
    code = ("import os, sys; from llmos.serve._run import _openmp_defaults; _openmp_defaults(); "
            "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [expected, "False"]  # and torch (libgomp) not yet loaded, so it takes effect
