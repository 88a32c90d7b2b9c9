"""What the recipes that look at data or train (prune-structured, distill) share: calibration
batches, and a child fine-tuned by the training recipe.

The fine-tune is an ordinary train job (`kind: train`) written into the recipe's work folder and
started with `llmos.run.launch`, the way `llmos train` starts one: the same loop, DDP over
`procs` workers, bf16 where the hardware has it, checkpoints, and its own MLflow run in the
compression's experiment (its run id is recorded in the child's llmos_model.json).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.compress._recipe import RecipeContext
from llmos.errors import LlmosError, SpecError

__all__ = ["TrainResult", "calibration_batches", "needs_training_data", "train_child"]


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    summary: dict[str, Any]

    def info(self) -> dict[str, Any]:
        """What the child's llmos_model.json records about its fine-tune."""
        return {key: self.summary.get(key) for key in ("steps", "wall_s", "metrics", "run_id")}


def needs_training_data(job: Any, recipe: str, why: str) -> None:
    """A SpecError, before any work, when a recipe that trains is given no training data."""
    if job.train is None:
        raise SpecError(f"recipe '{recipe}' trains, so it needs training data ({why}).",
                        problems=[("train", f"required by recipe '{recipe}'")],
                        hint="Add --train FILE (or train: in the spec): the data the parent was fine-tuned on.")


def calibration_batches(ctx: RecipeContext, *, batches: int, batch_size: int) -> list[dict[str, Any]]:
    """Up to `batches` batches of the job's calibration rows (already tokenized for the parent),
    a fixed random sample, so the same parent and data always give the same child."""
    rows = list(range(len(ctx.data.calib)))
    random.Random(0).shuffle(rows)
    rows = rows[:batches * batch_size]
    return [ctx.data.collate(ctx.data.calib, rows[i:i + batch_size]) for i in range(0, len(rows), batch_size)]


def train_child(ctx: RecipeContext, start: Path, *, name: str, epochs: float, lr: float, batch_size: int,
                procs: int, alpha: float, temperature: float = 2.0) -> TrainResult:
    """Fine-tune the model folder `start` on the job's training data with the training recipe, over
    `procs` DDP workers; with `alpha` > 0 it also distils from the parent (the frozen teacher)."""
    from llmos.run import launch
    from llmos.spec import TrainJob

    job, parent = ctx.job, ctx.parent
    distill = {"teacher": str(parent.folder), "alpha": alpha, "temperature": temperature} if alpha > 0 else None
    train_job = TrainJob.model_validate({
        "name": f"{parent.name}-{name}", "output": str(ctx.work_dir / name),
        "model": {"name": str(start), "task": parent.task, "max_length": parent.max_length},
        "data": _train_data(ctx),
        "train": {"epochs": epochs, "lr": lr, "batch_size": batch_size},
        "resources": {"procs": procs},
        # Its own MLflow run beside the compression run; the child is logged by the compression.
        "tracking": {"enabled": job.tracking.enabled, "uri": job.tracking.uri, "experiment": job.tracking.experiment,
                     "log_model": False, "system_metrics": False},
        "distill": distill,
    })
    ctx.note(f"{ctx.label}: {name} fine-tune, {epochs:g} epoch(s) at lr {lr:g} on {procs} worker(s)"
             + (f", distilling from {parent.ref} (alpha {alpha:g})" if distill else ""))
    result = launch(train_job)
    if result.exit_code != 0 or result.summary is None:
        raise LlmosError(f"the {name} fine-tune of {ctx.label} failed (exit code {result.exit_code}).",
                         hint=f"Its output is above; its run folder is {ctx.work_dir / name}.")
    summary = result.summary
    ctx.log_metrics({f"{name}/{k}": v for k, v in summary.get("metrics", {}).items()})
    return TrainResult(model_dir=Path(summary["model_dir"]), summary=summary)


def _train_data(ctx: RecipeContext) -> dict[str, Any]:
    """The train job's data section: the compress job's files and columns, with the parent's label
    order pinned so that the fine-tuned head keeps meaning what the parent's did."""
    job, task = ctx.job, ctx.parent.task
    spec = job.data
    return {"train": job.train, "eval": ctx.data.eval_source, "format": spec.format, "header": spec.header,
            "text_column": spec.text_column, "text_pair_column": spec.text_pair_column,
            "label_column": spec.label_column if task == "classification" else None,
            "labels": ctx.parent.info.get("label_names") if task == "classification" else None,
            "limit": spec.train_limit}
