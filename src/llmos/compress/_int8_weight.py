"""`int8-weight`: weight-only int8 (per-channel) for Linear layers through torchao. Activations
stay in floating point; the gain is memory: a quarter of the fp32 weight bytes, which is what
bounds token-by-token decoding of causal LMs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from llmos.compress._checks import require_fp32_parent
from llmos.compress._recipe import Params, Parent, Recipe, RecipeContext

__all__ = ["RECIPE"]


class Int8WeightParams(Params):
    quantize_head: Annotated[bool, Field(description="also quantize the output head (classifier / LM head)")] = False
    embeddings: Annotated[bool, Field(description=(
        "also store the token embeddings in int8 (per-row scales): most of a small encoder's bytes"))] = True


def check(parent: Parent, params: Int8WeightParams, job: object) -> None:
    require_fp32_parent("int8-weight", parent)


def run(ctx: RecipeContext, params: Int8WeightParams) -> Path:
    from llmos.compress._quantize import quantize_child
    from llmos.models._formats import quiet_torchao

    quiet_torchao()
    from torchao.quantization import Int8WeightOnlyConfig

    return quantize_child(ctx, params, scheme="int8-weight-only", fmt="torchao-int8-weight",
                          config=Int8WeightOnlyConfig())


RECIPE = Recipe(name="int8-weight", summary="weight-only int8 for Linear layers (torchao); for causal LMs",
                params=Int8WeightParams, check=check, run=run)
