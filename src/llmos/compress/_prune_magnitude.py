"""Global magnitude pruning: zero the smallest weights, ranked together across all chosen layers.

One global threshold (not one per layer) lets layers that tolerate sparsity give up more weights
than layers that do not (Han et al. 2015; Frankle & Carbin 2019). Only weight matrices are
pruned: biases and norms are tiny and sensitive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Sparsity", "magnitude_prune", "prunable_weights", "zero_fraction"]


@dataclass(frozen=True)
class Sparsity:
    target: float
    achieved: float  # share of zeros in the pruned matrices
    of_all_parameters: float  # share of zeros among every parameter of the model
    pruned_tensors: int
    pruned_weights: int  # weights in the pruned matrices (zeros and kept)


def prunable_weights(model: Any, *, classifier: bool = False, embeddings: bool = False) -> dict[str, torch.Tensor]:
    """The weight matrices magnitude pruning may touch, by parameter name.

    By default the Linear (and GPT-2 Conv1D) layers inside the transformer blocks; `classifier`
    adds those outside them (pooler, classification head, an untied LM head), `embeddings` the
    embedding tables. A tensor shared by two modules (tied weights) is listed once.
    """
    from transformers.pytorch_utils import Conv1D

    block_prefixes = _block_prefixes(model)
    chosen: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, module in model.named_modules():
        in_blocks = any(name.startswith(p) for p in block_prefixes)
        if isinstance(module, torch.nn.Linear | Conv1D):
            wanted = in_blocks or classifier
        elif isinstance(module, torch.nn.Embedding):
            wanted = embeddings
        else:
            continue
        if wanted and id(module.weight) not in seen:
            seen.add(id(module.weight))
            chosen[f"{name}.weight"] = module.weight
    return chosen


def _block_prefixes(model: Any) -> list[str]:
    """Names of the ModuleLists of transformer blocks (e.g. `bert.encoder.layer.`)."""
    return [f"{name}." for name, module in model.named_modules()
            if isinstance(module, torch.nn.ModuleList) and len(module) > 0
            and name.rsplit(".", 1)[-1] in ("layer", "layers", "h", "block", "blocks")]


@torch.no_grad()
def magnitude_prune(model: Any, sparsity: float, *, classifier: bool = False, embeddings: bool = False) -> Sparsity:
    """Zero the `sparsity` share of smallest-magnitude weights across the prunable matrices, in place."""
    weights = list(prunable_weights(model, classifier=classifier, embeddings=embeddings).values())
    magnitudes = torch.cat([w.detach().abs().flatten().float() for w in weights])
    k = round(sparsity * magnitudes.numel())
    if k > 0:
        # Exactly k weights go, even when many share the threshold value (e.g. weights already zero).
        cut = magnitudes.topk(k, largest=False).indices
        mask = torch.ones_like(magnitudes, dtype=torch.bool)
        mask[cut] = False
        offset = 0
        for w in weights:
            n = w.numel()
            w.mul_(mask[offset:offset + n].view_as(w).to(w.dtype))
            offset += n
    pruned = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    return Sparsity(target=sparsity, achieved=pruned / max(total, 1), of_all_parameters=zero_fraction(model),
                    pruned_tensors=len(weights), pruned_weights=total)


def zero_fraction(model: Any) -> float:
    """Share of exact zeros among all (distinct) parameters of the model."""
    params = {id(p): p for p in model.parameters()}.values()
    zeros = sum(int((p == 0).sum()) for p in params)
    return zeros / max(1, sum(p.numel() for p in params))
