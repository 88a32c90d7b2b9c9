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
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CommandJob", "CommandResources"]


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
    env: Annotated[dict[str, str], Field(description="extra environment variables")] = {}
    cwd: Annotated[Path | None, Field(description="working folder; null: the job's log folder")] = None
    resources: Annotated[CommandResources, Field(description="what it needs")] = CommandResources()
