"""`prune-unstructured:sparsity=0.5`: global magnitude pruning of the Linear weights.

Reads top to bottom: load the parent → zero the smallest-magnitude weights of the transformer
blocks' Linear layers, ranked together across all of them → save the child.

Honest about what this buys: the child is an ordinary Hugging Face folder whose matrices hold
zeros. Dense kernels multiply zeros as fast as any other number, so it is NOT faster and its
safetensors file is NOT smaller; the report shows exactly that. It is the starting point for
sparse kernels or a sparse storage format, and a measure of how much of the model is redundant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from llmos.compress._checks import require_fp32_parent
from llmos.compress._recipe import Params, Parent, Recipe, RecipeContext, save_hf_child

__all__ = ["PRUNE_UNSTRUCTURED", "RECIPE", "PruneUnstructuredParams"]

NOTE = ("unstructured sparsity: weights are zeroed, not removed; dense kernels run no faster and the "
        "safetensors file is no smaller")


class PruneUnstructuredParams(Params):
    sparsity: Annotated[float, Field(gt=0, lt=1, description=(
        "share of the chosen weights set to zero, in (0, 1)"))] = 0.5
    classifier: Annotated[bool, Field(description=(
        "also prune Linear layers outside the transformer blocks (pooler, task head)"))] = False
    embeddings: Annotated[bool, Field(description="also prune the embedding tables")] = False


def check(parent: Parent, params: PruneUnstructuredParams, job: Any) -> None:
    require_fp32_parent("prune-unstructured", parent)


def run(ctx: RecipeContext, params: PruneUnstructuredParams) -> Path:
    from llmos.compress._prune_magnitude import magnitude_prune

    built = ctx.load_parent()
    sparsity = magnitude_prune(built.model, params.sparsity, classifier=params.classifier, embeddings=params.embeddings)
    ctx.note(f"prune-unstructured: {sparsity.achieved:.1%} of {sparsity.pruned_weights:,} weights in "
             f"{sparsity.pruned_tensors} matrices are zero ({sparsity.of_all_parameters:.1%} of all parameters)")
    ctx.log_metrics({"sparsity": sparsity.achieved, "sparsity_of_all_parameters": sparsity.of_all_parameters})
    return save_hf_child(ctx, params, built.model, built.tokenizer, note=NOTE,
                         sparsity={"target": sparsity.target, "achieved": sparsity.achieved,
                                   "of_all_parameters": sparsity.of_all_parameters,
                                   "pruned_tensors": sparsity.pruned_tensors,
                                   "pruned_weights": sparsity.pruned_weights})


PRUNE_UNSTRUCTURED = Recipe(
    name="prune-unstructured",
    summary="zero the smallest Linear weights to a target sparsity (no faster with dense kernels)",
    params=PruneUnstructuredParams, check=check, run=run)
RECIPE = PRUNE_UNSTRUCTURED  # what the recipe table (`_recipes.py`) looks up
