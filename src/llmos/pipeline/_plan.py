"""What one stage runs, once the models it uses are known: a spec of another kind, filled in.

train and compress stages are jobs of their kinds; evaluate and promote are `kind: command` jobs
running `python -m llmos.pipeline STEP.json`; deploy is a `kind: serve` spec (a deployment). Every
stage writes under its own folder (`runs/pipeline-NAME-ID/STAGE`), so that what it yielded is found
there, and a retried train stage resumes from its checkpoints in the same place.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from llmos.spec._pipeline import SPEC_KIND, PipelineJob, Stage, fill_refs, stage_defaults

__all__ = ["STEP_FILE", "make_pipeline_folder", "pipeline_folder", "stage_spec"]

STEP_FILE = "step.json"


def pipeline_folder(job: PipelineJob, key: str) -> Path:
    """`runs/pipeline-NAME-KEY`: KEY is the pipeline's job id under the daemon, a time in the foreground."""
    from llmos.paths import runs_dir

    return runs_dir() / f"pipeline-{job.name}-{key}"


def stage_spec(job: PipelineJob, stage: Stage, models: dict[str, str], folder: Path) -> dict[str, Any]:
    """The stage as a spec mapping of its kind, references filled in from `models` (stage -> NAME/VERSION),
    writing under `folder`."""
    body = fill_refs(stage.body(), models)
    if stage.action in SPEC_KIND:
        spec = {**stage_defaults(stage, job.name), **body, "kind": SPEC_KIND[stage.action]}
        if stage.action in ("train", "compress"):
            spec["output"] = str(folder)
        return spec
    make_pipeline_folder(folder.parent)
    folder.mkdir(exist_ok=True)
    step = folder / STEP_FILE
    step.write_text(json.dumps({"action": stage.action, "body": body, "folder": str(folder)}, indent=2))
    cpus = int(body.get("cpus", 1)) if stage.action == "evaluate" else 1
    # `output`: the folder is the step's run folder, so that a job running as its project's user
    # (isolation) is given it and writes result.json there
    return {"kind": "command", "name": f"{job.name}-{stage.name}", "cwd": str(folder), "output": str(folder),
            "run": [sys.executable, "-m", "llmos.pipeline", str(step)], "resources": {"cpus": cpus}}


def make_pipeline_folder(folder: Path) -> None:
    """Make the pipeline's folder, 0711: a stage job running as its project's user (isolation: users)
    reaches its own stage folder in it (given to it, 0700, as any job's run folder) without listing
    the others."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o711)
