"""`bf16`: the parent's weights cast to bfloat16. Half the bytes, and on CPUs with AVX512-BF16 or
AMX the matmuls run natively in bf16: the baseline every other recipe has to beat."""

from __future__ import annotations

from pathlib import Path

from llmos.compress._checks import require_fp32_parent
from llmos.compress._recipe import NoParams, Parent, Recipe, RecipeContext, write_child_info

__all__ = ["RECIPE"]


def check(parent: Parent, params: NoParams, job: object) -> None:
    require_fp32_parent("bf16", parent)


def run(ctx: RecipeContext, params: NoParams) -> Path:
    import torch

    from llmos.models import save_trained

    built = ctx.load_parent()
    model = built.model.to(torch.bfloat16)
    parent = ctx.parent
    save_trained(model, built.tokenizer, ctx.out_dir, task=parent.task, base=parent.info.get("base_model", ""),
                 label_names=parent.info.get("label_names"), max_length=parent.max_length)
    write_child_info(ctx, params, format="bf16")
    return ctx.out_dir


RECIPE = Recipe(name="bf16", summary="weights in bfloat16 (fast on AVX512-BF16/AMX CPUs and GPUs)",
                params=NoParams, check=check, run=run)
