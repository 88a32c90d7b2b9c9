"""`distill:layers=3[,temperature=2.0,alpha=0.5,epochs=3]`: a student with fewer transformer blocks,
initialised from the teacher's (the parent's) blocks and trained to follow its outputs.

Reads top to bottom: load the parent → copy it keeping `layers` of its blocks (evenly spread,
the top one always: 6 → 3 keeps 1, 3, 5) → save the student → train it with the training recipe,
whose `distill` section blends alpha · KL(teacher/T ‖ student/T) · T² with (1 − alpha) · the task
loss, the teacher's outputs computed under no_grad in the loop → save the child.

Works for every task the training recipe has: classification (class scores), causal-lm
(next-token distributions; teacher and student share the tokenizer) and embedding (the in-batch
similarity of texts to positives), on any architecture whose blocks are a list named layer,
layers or h (BERT, RoBERTa, GPT-2, Llama, ...), including a structurally pruned parent.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from llmos.compress._checks import require_fp32_parent
from llmos.compress._distill_train import needs_training_data, train_child
from llmos.compress._recipe import Params, Parent, Recipe, RecipeContext, write_child_info
from llmos.errors import ModelError, SpecError

__all__ = ["DISTILL", "RECIPE", "DistillParams"]


class DistillParams(Params):
    layers: Annotated[int | None, Field(gt=0, description=(
        "transformer blocks of the student; null: half the teacher's"))] = None
    keep: Annotated[list[int] | None, Field(description=(
        "which teacher blocks (0-based) the student starts from; null: evenly spread, the top one included"))] = None
    temperature: Annotated[float, Field(gt=0, description=(
        "softens teacher and student distributions; the KL term is scaled by temperature²"))] = 2.0
    alpha: Annotated[float, Field(ge=0, le=1, description="weight of the KL term; the task loss gets 1 − alpha")] = 0.5
    epochs: Annotated[float, Field(gt=0, description="passes over the training data")] = 3
    lr: Annotated[float, Field(gt=0, description="peak learning rate")] = 1e-4
    batch_size: Annotated[int, Field(gt=0, description="examples per worker per step")] = 32
    procs: Annotated[int, Field(gt=0, description="worker processes of the training (DDP when above 1)")] = 1


def check(parent: Parent, params: DistillParams, job: Any) -> None:
    """Quick, weight-free: can this parent teach a student of this size?"""
    require_fp32_parent("distill", parent)
    n = _teacher_layers(parent)
    layers = params.layers or max(1, n // 2)
    problems = []
    if n < 2 or layers >= n:
        problems.append(("layers", f"the teacher has {n} blocks; a student needs fewer (1 to {n - 1})"))
    if params.keep is not None:
        if len(params.keep) != layers:
            problems.append(("keep", f"lists {len(params.keep)} blocks for a student of {layers}"))
        if len(set(params.keep)) != len(params.keep) or not all(0 <= i < n for i in params.keep):
            problems.append(("keep", f"must name distinct blocks between 0 and {n - 1}"))
    if problems:
        raise SpecError("distill cannot build this student.",
                        problems=[(f"recipe.distill.{field}", msg) for field, msg in problems],
                        hint=f"For example --recipe distill:layers={max(1, n // 2)}")
    needs_training_data(job, "distill", "the student learns on it")


def _teacher_layers(parent: Parent) -> int:
    config = parent.config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if isinstance(config.get(key), int):
            return int(config[key])
    raise ModelError(f"{parent.ref}: its config.json does not say how many blocks it has.",
                     hint="distill supports Hugging Face transformers with num_hidden_layers in their config.")


def run(ctx: RecipeContext, params: DistillParams) -> Path:
    from llmos.compress._distill_student import make_student, spread_layers
    from llmos.models import save_trained

    # ---- the student: the teacher with fewer blocks ----------------------------------------
    teacher = ctx.load_parent()
    n = _teacher_layers(ctx.parent)
    keep = params.keep or spread_layers(n, params.layers or max(1, n // 2))
    student = make_student(teacher.model, keep)
    student_dir = save_trained(student, teacher.tokenizer, ctx.work_dir / "student", task=ctx.parent.task,
                               base=ctx.parent.info.get("base_model", ""),
                               label_names=ctx.parent.info.get("label_names"), max_length=ctx.parent.max_length)
    ctx.note(f"distill: student of {len(keep)} blocks from the teacher's blocks {keep}")

    # ---- train it against the teacher, save ------------------------------------------------
    result = train_child(ctx, student_dir, name="distill", epochs=params.epochs, lr=params.lr,
                         batch_size=params.batch_size, procs=params.procs, alpha=params.alpha,
                         temperature=params.temperature)
    shutil.copytree(result.model_dir, ctx.out_dir, dirs_exist_ok=True)
    write_child_info(ctx, params, format="hf-safetensors", student={"layers": len(keep), "teacher_layers": keep},
                     training=result.info())
    return ctx.out_dir


DISTILL = Recipe(
    name="distill",
    summary="train a student with fewer layers (initialised from the teacher's) on the teacher's outputs",
    params=DistillParams, check=check, run=run)
RECIPE = DISTILL  # what the recipe table (`_recipes.py`) looks up
