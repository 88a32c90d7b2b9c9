"""`int8-weight`: weight-only int8 (per-channel) for Linear layers through torchao. Activations
stay in floating point; the gain is memory: a quarter of the fp32 weight bytes, which is what
bounds token-by-token decoding of causal LMs."""

from __future__ import annotations

from pathlib import Path

from llmos.compress._checks import require_fp32_parent
from llmos.compress._quantize import Int8Params, quantize_child
from llmos.compress._recipe import Parent, Recipe, RecipeContext

__all__ = ["RECIPE"]


def check(parent: Parent, params: Int8Params, job: object) -> None:
    require_fp32_parent("int8-weight", parent)


def run(ctx: RecipeContext, params: Int8Params) -> Path:
    from torchao.quantization import Int8WeightOnlyConfig

    return quantize_child(ctx, params, scheme="int8-weight-only", fmt="torchao-int8-weight",
                          config=Int8WeightOnlyConfig())


RECIPE = Recipe(name="int8-weight", summary="weight-only int8 for Linear layers (torchao); for causal LMs",
                params=Int8Params, check=check, run=run)
