"""The `kind: command` spec: any program, run under the control plane's placement (like a batch script).

    kind: command
    name: preprocess
    run: [python, prep.py, --shard, "3"]
    resources: {cpus: 2, memory_gb: 4}

It is how non-llmos work shares the machine with training jobs. It exits 0 on success; 75 means
"stopped with a checkpoint, run me again" (as for a training job), anything else is a failure to retry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmos.errors import SpecError

__all__ = ["CommandJob", "CommandResources", "parse_command"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommandResources(_Strict):
    cpus: Annotated[int, Field(gt=0, description="cores the program is pinned to")] = 1
    memory_gb: Annotated[float, Field(ge=0, description="memory reserved for it, in GB")] = 0.0
    gpus: Annotated[int, Field(ge=0, description="GPUs it sees (CUDA_VISIBLE_DEVICES)")] = 0


class CommandJob(_Strict):
    kind: Annotated[Literal["command"], Field(description="what the job does")] = "command"
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="job name")] = "command"
    run: Annotated[list[str], Field(min_length=1, description="the program and its arguments (no shell)")]
    env: Annotated[dict[str, str], Field(description=(
        "extra environment variables; a value may use ${secret:NAME}, a project secret (llmos secrets set) "
        "given to the job only"))] = {}
    cwd: Annotated[Path | None, Field(description="working folder; null: the job's log folder")] = None
    output: Annotated[Path | None, Field(description=(
        "a folder it writes its results in, made and given to it as its run folder (under isolation: its "
        "project's user's, 0700); null: none"))] = None
    resources: Annotated[CommandResources, Field(description="what it needs")] = CommandResources()


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
    for name in ("cwd", "output"):
        if getattr(job, name) is not None and not getattr(job, name).is_absolute():
            job = job.model_copy(update={name: (Path.cwd() / getattr(job, name)).resolve()})
    return job


def _message(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        model = CommandResources if err["loc"][0] == "resources" else CommandJob
        return "unknown field; known fields: " + ", ".join(model.model_fields)
    if err["type"] == "missing":
        return "required field is missing"
    return f"{err['msg'].removeprefix('Value error, ')}, got {err.get('input')!r}"
