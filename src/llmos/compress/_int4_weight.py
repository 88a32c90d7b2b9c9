"""`int4-weight`: weight-only int4, per group of input channels, for the Linear layers of a causal
LM through torchao (`IntxWeightOnlyConfig`, the int4 layout that runs on CPU). Stored two values a
byte. For encoders it is refused: their cost is compute, not weight bytes, and int4 error on
short classification inputs costs accuracy for no speed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from llmos.compress._checks import require_fp32_parent, require_task
from llmos.compress._recipe import Params, Parent, Recipe, RecipeContext

__all__ = ["RECIPE"]


class Int4WeightParams(Params):
    group_size: Annotated[Literal[32, 64, 128, 256], Field(
        description="input channels sharing one scale; smaller is more accurate and larger on disk")] = 32
    quantize_head: Annotated[bool, Field(description="also quantize the LM head (when not tied)")] = False


def check(parent: Parent, params: Int4WeightParams, job: object) -> None:
    require_task("int4-weight", parent, ("causal-lm",),
                 "weight-only int4 pays off for memory-bound decoding; for encoders use int8 or onnx-int8")
    require_fp32_parent("int4-weight", parent)


def run(ctx: RecipeContext, params: Int4WeightParams) -> Path:
    import torch
    from torchao.quantization import IntxWeightOnlyConfig, PerGroup

    from llmos.compress._quantize import quantize_child

    config = IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(params.group_size))
    return quantize_child(ctx, params, scheme="int4-weight-only", fmt="torchao-int4-weight", config=config,
                          group_size=params.group_size)


RECIPE = Recipe(name="int4-weight", summary="weight-only int4 per group for Linear layers (torchao); causal LMs only",
                params=Int4WeightParams, check=check, run=run, tasks=("causal-lm",))
