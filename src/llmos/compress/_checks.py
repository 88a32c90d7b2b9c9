"""Checks shared by recipes: run before any work, from the parent's metadata alone."""

from __future__ import annotations

from llmos.compress._recipe import Parent
from llmos.errors import ModelError

__all__ = ["require_fp32_parent", "require_task"]


def require_task(recipe: str, parent: Parent, tasks: tuple[str, ...], why: str = "") -> None:
    if parent.task not in tasks:
        raise ModelError(f"recipe '{recipe}' cannot handle {parent.ref}: it is a {parent.task} model and "
                         f"'{recipe}' supports {', '.join(tasks)}{f' ({why})' if why else ''}.",
                         hint="Drop that recipe, or pick one listed by: llmos compress --list")


def require_fp32_parent(recipe: str, parent: Parent) -> None:
    """Quantizing needs full-precision weights: not an already quantized or exported parent."""
    if parent.format != "hf-safetensors":
        ancestor = parent.info.get("parent") or {}
        where = f" (its own parent is {ancestor['name']}/{ancestor['version']})" if ancestor.get("version") else ""
        raise ModelError(f"recipe '{recipe}' needs a full-precision parent; {parent.ref} is stored as "
                         f"'{parent.format}'{where}.",
                         hint="Compress the full-precision version instead; llmos models show "
                              f"{parent.name} lists the versions and their recipes.")
