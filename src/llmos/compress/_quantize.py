"""torchao weight quantization of Linear layers, shared by the int8, int8-weight and int4-weight
recipes, plus (optionally) int8 token embeddings with per-row scales (`Int8Embedding`).

The output head (classifier, LM head) stays in full precision unless asked: it is small, tied to
the embeddings in many LMs, and where quantization error hurts the metric most."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from llmos.compress._recipe import Params, RecipeContext, write_child_info

__all__ = ["HEAD_NAMES", "Int8Params", "quantize_child"]

HEAD_NAMES = ("classifier", "score", "lm_head", "qa_outputs")


class Int8Params(Params):
    """Parameters of the int8 and int8-weight recipes."""

    quantize_head: Annotated[bool, Field(description="also quantize the output head (classifier / LM head)")] = False
    embeddings: Annotated[bool, Field(description=(
        "also store the token embeddings in int8 (per-row scales): most of a small encoder's bytes"))] = True


def quantize_child(ctx: RecipeContext, params: Params, *, scheme: str, fmt: str, config: Any,
                   group_size: int | None = None) -> Path:
    """Load the parent, quantize its Linear layers with the torchao `config`, save the child."""
    import torch
    import torchao
    from torchao.quantization import quantize_

    from llmos.models._formats import conv1d_to_linear, save_torchao
    from llmos.models._int8_embedding import quantize_embeddings

    built = ctx.load_parent()
    inner = built.model.encoder if ctx.parent.task == "embedding" else built.model
    swapped = conv1d_to_linear(inner)  # GPT-2 keeps its projections in Conv1D, which torchao skips
    skip = _skipped(inner, quantize_head=getattr(params, "quantize_head", False), group_size=group_size)
    chosen = [name for name, mod in inner.named_modules() if isinstance(mod, torch.nn.Linear) and name not in skip]
    if not chosen:
        from llmos.errors import ModelError

        raise ModelError(f"{ctx.parent.ref} has no Linear layer that '{scheme}' can quantize.",
                         hint="Use bf16 or onnx-int8 for this model.")
    picked = set(chosen)
    with torch.no_grad():
        quantize_(inner, config, filter_fn=lambda mod, name: name in picked)
        tables = quantize_embeddings(inner, skip=_tied_modules(inner)) if getattr(params, "embeddings", False) else []
    ctx.note(f"{ctx.label}: quantized {len(chosen)} Linear layers ({scheme}) and {len(tables)} embedding "
             f"table(s) (int8), kept {len(skip)} Linear layer(s) in full precision")
    layout = {"scheme": scheme, "torchao": torchao.__version__, "group_size": group_size,
              "quantized": chosen, "full_precision": sorted(skip), "conv1d_to_linear": swapped > 0,
              "int8_embeddings": tables}
    save_torchao(built.model, built.tokenizer, ctx.out_dir, task=ctx.parent.task, layout=layout)
    write_child_info(ctx, params, format=fmt)
    return ctx.out_dir


def _tied_modules(model: Any) -> set[str]:
    """Modules whose weight is shared with another module (an LM head tied to the embeddings)."""
    owners: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(param), []).append(name)
    return {n.rpartition(".")[0] for names in owners.values() if len(names) > 1 for n in names}


def _skipped(model: Any, *, quantize_head: bool, group_size: int | None) -> set[str]:
    """Linear layers left alone: the head (unless asked), layers whose weight is tied to another
    parameter, and layers whose input width the group size does not divide."""
    import torch

    skip: set[str] = set()
    tied = _tied_modules(model)
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear):
            continue
        is_head = name.split(".")[0] in HEAD_NAMES
        if (is_head and not quantize_head) or name in tied or (group_size and mod.in_features % group_size):
            skip.add(name)
    return skip
