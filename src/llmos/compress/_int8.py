"""`int8`: dynamic int8 activations × int8 weights (per-channel, symmetric) for Linear layers,
through torchao's `quantize_`. Weights are quantized once; each activation row gets its own scale
at run time, so no calibration data is needed.

On CPU, torchao's eager int8 path is slower than fp32: the speed comes from `torch.compile`
(inductor with frozen weights), which the report applies (`report.compile: auto`)."""

from __future__ import annotations

from pathlib import Path

from llmos.compress._checks import require_fp32_parent
from llmos.compress._quantize import Int8Params, quantize_child
from llmos.compress._recipe import Parent, Recipe, RecipeContext

__all__ = ["RECIPE"]


def check(parent: Parent, params: Int8Params, job: object) -> None:
    require_fp32_parent("int8", parent)


def run(ctx: RecipeContext, params: Int8Params) -> Path:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig

    return quantize_child(ctx, params, scheme="int8-dynamic", fmt="torchao-int8",
                          config=Int8DynamicActivationInt8WeightConfig())


RECIPE = Recipe(name="int8", summary="dynamic int8 activations and int8 weights for Linear layers (torchao)",
                params=Int8Params, check=check, run=run)
