"""`kind: command`: any program, run under the control plane's placement (like a batch script).

    kind: command
    name: preprocess
    run: [python, prep.py, --shard, "3"]
    resources: {cpus: 2, memory_gb: 4}

It is how non-llmos work shares the machine with training jobs, and what the control plane's
tests and benchmark use as a trivial job. It exits 0 on success; 75 means "stopped with a
checkpoint, run me again" (as for a training job), anything else is a failure to retry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llmos.errors import SpecError
from llmos.spec import CommandJob, CommandResources

__all__ = ["CommandJob", "CommandResources", "parse_command"]


def parse_command(raw: dict[str, Any], overrides: list[str] | None = None, source: str = "spec") -> CommandJob:
    """Validate a command job, reporting every problem at once like `llmos spec validate`."""
    from llmos.spec import apply_overrides

    data = apply_overrides(raw, overrides or [])
    try:
        job = CommandJob.model_validate(data)
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in e["loc"]) or "(spec)", _message(e)) for e in exc.errors()]
        raise SpecError(f"{source} has {exc.error_count()} problem(s):", problems=problems,
                        hint="Fix the fields above; docs/control-plane.md shows a command job.") from None
    if job.cwd is not None and not job.cwd.is_absolute():
        job = job.model_copy(update={"cwd": (Path.cwd() / job.cwd).resolve()})
    return job


def _message(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        model = CommandResources if err["loc"][0] == "resources" else CommandJob
        return "unknown field; known fields: " + ", ".join(model.model_fields)
    if err["type"] == "missing":
        return "required field is missing"
    return f"{err['msg'].removeprefix('Value error, ')}, got {err.get('input')!r}"
