"""`prune-structured:heads=0.3,ffn=0.3[,recover_epochs=1]`: remove the least important attention
heads and FFN neurons of every layer, physically, for a smaller dense model that really runs faster.

Reads top to bottom: load the parent → score every head and neuron with first-order Taylor
importance on a few calibration batches → slice them out of the Q/K/V/output and FFN layers →
optionally recover the lost accuracy with a short fine-tune through the training recipe (the
same loop, DDP via the compress job's `resources.procs`, distilling from the parent when
`recover_alpha` > 0) → save the child.

Every layer loses the same share of its heads and neurons, each layer its least important ones.
The child keeps the parent's config plus the kept shapes (`llmos_structure`, see
`llmos.models._pruned`): `llmos.models.load_trained` rebuilds it; a plain Hugging Face
`from_pretrained` cannot, as BERT configs cannot express heads narrower than hidden / heads.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from llmos.compress._checks import require_fp32_parent
from llmos.compress._distill_train import calibration_batches, needs_training_data, train_child
from llmos.compress._recipe import Params, Parent, Recipe, RecipeContext, write_child_info
from llmos.errors import ModelError, SpecError

__all__ = ["PRUNE_STRUCTURED", "RECIPE", "PruneStructuredParams"]


class PruneStructuredParams(Params):
    heads: Annotated[float, Field(ge=0, lt=1, description="share of attention heads removed from every layer")] = 0.3
    ffn: Annotated[float, Field(ge=0, lt=1, description="share of FFN neurons removed from every layer")] = 0.3
    calibration_batches: Annotated[int, Field(gt=0, description=(
        "calibration batches the importance scores are summed over (at most the job's calibration rows)"))] = 16
    batch_size: Annotated[int, Field(gt=0, description="examples per calibration and recovery batch")] = 32
    recover_epochs: Annotated[float, Field(ge=0, description=(
        "epochs of fine-tuning after pruning, through the training recipe; 0: none"))] = 0
    recover_lr: Annotated[float, Field(gt=0, description="peak learning rate of the recovery fine-tune")] = 1e-4
    recover_alpha: Annotated[float, Field(ge=0, le=1, description=(
        "weight of distillation from the parent during recovery; 0: plain fine-tune on the labels"))] = 0.0
    procs: Annotated[int, Field(gt=0, description="worker processes of the recovery fine-tune (DDP when above 1)")] = 1

    @model_validator(mode="after")
    def _removes_something(self) -> PruneStructuredParams:
        if self.heads == 0 and self.ffn == 0:
            raise ValueError("heads=0 and ffn=0 remove nothing: give heads and/or ffn a share in (0, 1)")
        return self


def check(parent: Parent, params: PruneStructuredParams, job: Any) -> None:
    """Quick, weight-free: can this recipe prune this parent with these parameters?"""
    from llmos.compress._prune_importance import removal_count
    from llmos.models._pruned import ENCODER_TYPES, STRUCTURE_KEY

    require_fp32_parent("prune-structured", parent)
    config = parent.config
    if config.get("model_type") not in ENCODER_TYPES or parent.task == "causal-lm":
        raise ModelError(f"prune-structured removes heads of BERT-style encoders ({', '.join(ENCODER_TYPES)}); "
                         f"{parent.ref} is a '{config.get('model_type')}' {parent.task} model.",
                         hint="Use prune-unstructured or distill for this model.")
    hidden, n_heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    if hidden % n_heads:
        raise ModelError(f"{parent.ref}: hidden_size {hidden} is not divisible by num_attention_heads {n_heads}, "
                         "so its heads have no common width to remove.", hint="Use prune-unstructured instead.")
    structure = config.get(STRUCTURE_KEY) or {}
    problems = []
    for field, share, counts in (
            ("heads", params.heads, structure.get("attention_heads") or [n_heads]),
            ("ffn", params.ffn, structure.get("intermediate_sizes") or [int(config["intermediate_size"])])):
        if share == 0:
            continue
        smallest = min(counts)
        if removal_count(smallest, share) >= smallest:
            problems.append((f"recipe.prune-structured.{field}",
                             f"{share} removes all {smallest} units of a layer; leave at least one"))
        elif removal_count(smallest, share) == 0:
            problems.append((f"recipe.prune-structured.{field}",
                             f"{share} of {smallest} rounds to 0 units removed; use at least {1 / smallest:.3g}"))
    if problems:
        raise SpecError("prune-structured cannot prune this model with these parameters.", problems=problems,
                        hint="Change the shares, e.g. --recipe prune-structured:heads=0.25,ffn=0.3")
    if params.recover_epochs > 0:
        needs_training_data(job, "prune-structured", "recover_epochs > 0 fine-tunes the pruned model")


def run(ctx: RecipeContext, params: PruneStructuredParams) -> Path:
    from llmos.compress._prune_importance import keep_top, taylor_importance
    from llmos.models import save_trained
    from llmos.models._pruned import STRUCTURE_KEY, shrink

    # ---- load and score ----------------------------------------------------------------------
    built = ctx.load_parent()
    model, task = built.model, ctx.parent.task
    before = _count(model)
    batches = calibration_batches(ctx, batches=params.calibration_batches, batch_size=params.batch_size)
    ctx.note(f"prune-structured: scoring heads and FFN neurons on {len(batches)} calibration batches")
    importance = taylor_importance(model, batches, task)

    # ---- remove the least important units of every layer -----------------------------------
    shrink(model, keep_top(importance.heads, params.heads), keep_top(importance.neurons, params.ffn))
    structure, after = getattr(model.config, STRUCTURE_KEY), _count(model)
    extra = {"structure": structure, "parameters": {"parent": before, "child": after}}
    ctx.note(f"prune-structured: heads per layer {structure['attention_heads']}, FFN neurons per layer "
             f"{structure['intermediate_sizes']}; {before:,} → {after:,} parameters")
    ctx.log_metrics({"parameters": after, "parameter_ratio": after / before})
    pruned_dir = save_trained(model, built.tokenizer, ctx.work_dir / "pruned", task=task,
                              base=ctx.parent.info.get("base_model", ""),
                              label_names=ctx.parent.info.get("label_names"), max_length=ctx.parent.max_length)

    # ---- recover (optional), save ------------------------------------------------------------
    if params.recover_epochs > 0:
        result = train_child(ctx, pruned_dir, name="recover", epochs=params.recover_epochs, lr=params.recover_lr,
                             batch_size=params.batch_size, procs=params.procs, alpha=params.recover_alpha)
        pruned_dir = result.model_dir
        extra["recovery"] = result.info()
    shutil.copytree(pruned_dir, ctx.out_dir, dirs_exist_ok=True)
    write_child_info(ctx, params, format="hf-safetensors", **extra)
    return ctx.out_dir


def _count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


PRUNE_STRUCTURED = Recipe(
    name="prune-structured",
    summary="physically remove the least important heads and FFN neurons (BERT-style); optional recovery",
    params=PruneStructuredParams, check=check, run=run, tasks=("classification", "embedding"))
RECIPE = PRUNE_STRUCTURED  # what the recipe table (`_recipes.py`) looks up
