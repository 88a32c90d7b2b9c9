"""The control plane end to end, for compression jobs and token revocation: a real daemon
(`llmos up`), a real compression preempted by a real high-priority job, real MLflow, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration._util import llmos, write_job
from tests.integration.test_compress_cli import FAST_REPORT, _register_parent
from tests.integration.test_control_plane import client, command_job, plane, wait_for  # noqa: F401  (plane: fixture)

pytestmark = pytest.mark.slow
PY = sys.executable


@pytest.mark.timeout(600)  # two compressions of a tiny model and a daemon on a 2-core machine
def test_compress_job_is_preempted_rerun_and_registers_one_set(plane, tmp_path: Path, llmos_home: Path,  # noqa: F811
                                                                 sentiment_csv: tuple[Path, Path]) -> None:
    from mlflow.tracking import MlflowClient

    _register_parent(llmos_home, tmp_path / "parent")
    spec = write_job(tmp_path / "spec", f"kind: compress\nmodel: reviews@candidate\nrecipe: bf16\n"
                                        f"eval: {sentiment_csv[1]}\nalias: small\n"
                                        "resources: {cpus: 2, memory_gb: 1}\n")
    plane("--retry-base-s", "0.2")
    out = llmos("submit", str(spec), *FAST_REPORT, "--priority", "low").stdout  # the report's settings as overrides
    job_id = int(out.split("submitted job ")[1].split()[0])
    first_log = llmos_home / "control" / "jobs" / str(job_id) / "attempt-1" / "output.log"
    with client() as c:
        # The recipe has run and the models are being measured: a high-priority job needs both cores.
        wait_for(lambda: first_log.is_file() and "measuring 2 models" in first_log.read_text(), timeout_s=300,
                 what="the compression to reach its measurements")
        urgent = c.submit_file(command_job(tmp_path, "urgent", [PY, "-c", "import time; time.sleep(1)"], cpus=2),
                               priority="high")["id"]
        wait_for(lambda: c.job(job_id)["state"] in ("SUCCEEDED", "FAILED"), timeout_s=400, what="the compression")
        job, first = c.job(job_id), c.job(urgent)
    assert job["state"] == "SUCCEEDED", json.dumps(job["transitions"], indent=1)
    assert first["state"] == "SUCCEEDED"
    assert [(a["exit_code"], a["outcome"]) for a in job["attempts"]] == [(75, "stopped"), (0, "ok")]
    assert [t["to"] for t in job["transitions"]].count("PREEMPTED") == 1 and job["failures"] == 0
    assert all(w["cores"] == [0, 1] for a in job["attempts"] for w in a["placement"]["workers"])
    assert "before registering anything" in first_log.read_text()
    logs = llmos("logs", str(job_id)).stdout
    assert "registered reviews/2  bf16  (passed the gate)" in logs and "reviews@small -> 2" in logs

    # One set of children: the stopped attempt registered nothing, its work folder was kept aside.
    registry = MlflowClient(f"sqlite:///{llmos_home / 'mlflow.db'}")
    versions = {str(v.version): v for v in registry.search_model_versions("name = 'reviews'")}
    assert sorted(versions) == ["1", "2"]
    child = versions["2"]
    assert child.tags["parent"] == "reviews/1" and child.tags["recipe"] == "bf16" and child.tags["gate"] == "passed"
    assert child.tags["eval_data"] == str(sentiment_csv[1]) and len(child.tags["data_hash"]) == 64
    assert str(registry.get_model_version_by_alias("reviews", "small").version) == "2"
    run_dir = Path(job["run_dir"])
    assert json.loads((run_dir / "report.json").read_text())["children"][0]["registered"] == "2"
    assert [p.name.startswith(f"{run_dir.name}.attempt-") for p in run_dir.parent.glob(f"{run_dir.name}.*")] == [True]
    runs = registry.search_runs([registry.get_experiment_by_name("llmos").experiment_id],
                                "tags.`llmos.recipe` = 'compress'")
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]  # the stopped run is closed, not left open


def test_tokens_list_and_revoke_through_the_daemon(plane, llmos_home: Path) -> None:  # noqa: F811
    plane()
    made = llmos("tokens", "create", "--role", "developer", "--name", "ann").stdout
    ann = next(line for line in made.splitlines() if line.startswith("llmos_"))

    def as_ann(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PY, "-m", "llmos.cli.main", *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "LLMOS_TOKEN": ann, "LLMOS_DEBUG": "0"})

    assert as_ann("jobs").returncode == 0
    denied = as_ann("tokens", "list")
    assert denied.returncode == 2 and "admin role" in denied.stderr
    listed = llmos("tokens", "list").stdout
    assert "ann" in listed and "developer" in listed and ann[:12] in listed and ann not in listed
    with client() as c:
        ann_id = next(t["id"] for t in c.tokens() if t["name"] == "ann")
        admin_id = next(t["id"] for t in c.tokens() if t["role"] == "admin")
    last = llmos("tokens", "revoke", str(admin_id), check=False)
    assert last.returncode == 2 and "last admin token" in last.stderr

    assert f"revoked token {ann_id}" in llmos("tokens", "revoke", str(ann_id)).stdout
    refused = as_ann("jobs")  # at once: the daemon had the token cached as valid
    assert refused.returncode == 2 and "revoked" in refused.stderr
    assert "ann" not in llmos("tokens", "list").stdout and "ann" in llmos("tokens", "list", "--all").stdout
    with client() as c:
        audit = [(a["actor"], a["action"], a["target"], a["outcome"]) for a in reversed(c.audit())]
    assert ("admin", "tokens.revoke", f"token {admin_id}", "409") in audit
    assert ("admin", "tokens.revoke", f"token {ann_id}", "ok") in audit
    assert ("ann", "tokens.list", "tokens", "403") in audit
