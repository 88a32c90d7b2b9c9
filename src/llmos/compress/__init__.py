"""Compression: recipes that turn a registered model into smaller or faster children
(quantization, pruning, distillation), each registered with its lineage, measured against the
parent in one report, and promoted only through the gate.

`compress(job)` runs a `kind: compress` job; `RECIPE_NAMES` / `get_recipe` is the recipe table;
`compare` / `decide` are the gate as pure functions. Heavy packages load inside the recipes.
"""

from llmos.compress._gate import Comparison, GateResult, compare, decide
from llmos.compress._recipe import NoParams, Params, Parent, Recipe, RecipeContext, save_hf_child, write_child_info
from llmos.compress._recipes import RECIPE_NAMES, get_recipe

__all__ = [
    "RECIPE_NAMES",
    "Comparison",
    "CompressResult",
    "GateResult",
    "NoParams",
    "Params",
    "Parent",
    "Recipe",
    "RecipeContext",
    "compare",
    "compress",
    "decide",
    "get_recipe",
    "save_hf_child",
    "write_child_info",
]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # The pipeline imports the registry, tracking and data layers: only when it is used.
    if name in ("compress", "CompressResult"):
        from llmos.compress import _pipeline

        return getattr(_pipeline, name)
    raise AttributeError(name)
