"""The name → recipe table. One line per recipe; each recipe is one file.

Modules are imported on first use, so this table is cheap to import (spec validation and the
CLI read the names) and a recipe module that fails to import breaks only itself.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

from llmos.errors import SpecError

if TYPE_CHECKING:
    from llmos.compress._recipe import Recipe

__all__ = ["RECIPE_NAMES", "get_recipe"]

# recipe name -> module (under llmos.compress) exporting `RECIPE`
_TABLE: dict[str, str] = {
    "bf16": "_bf16",
    "int8": "_int8",
    "int8-weight": "_int8_weight",
    "int4-weight": "_int4_weight",
    "onnx-int8": "_onnx_int8",
    "prune-unstructured": "_prune_unstructured",
    "prune-structured": "_prune_structured",
    "distill": "_distill",
}
RECIPE_NAMES: tuple[str, ...] = tuple(_TABLE)


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; a SpecError with a did-you-mean for an unknown one."""
    if name not in _TABLE:
        close = difflib.get_close_matches(name, RECIPE_NAMES, n=1, cutoff=0.5)
        tip = f"did you mean '{close[0]}'? " if close else ""
        raise SpecError(f"unknown recipe '{name}'; {tip}known recipes: {', '.join(RECIPE_NAMES)}.",
                        hint="List them with: llmos compress --list")
    try:
        module = importlib.import_module(f"llmos.compress.{_TABLE[name]}")
    except ModuleNotFoundError as exc:
        if exc.name != f"llmos.compress.{_TABLE[name]}":
            raise
        raise SpecError(f"recipe '{name}' is not available in this version of llmos.",
                        hint=f"Pick another recipe: {', '.join(RECIPE_NAMES)}") from None
    return module.RECIPE
