"""Which attention heads and FFN neurons matter: first-order Taylor importance, and the choice of
what to keep.

Picture a gate ξ = 1 on each unit's output: removing the unit sets ξ to 0, which to first order
changes the loss by ∂L/∂ξ (Michel et al. 2019, "Are sixteen heads really better than one?";
Molchanov et al. 2019). That derivative is exactly Σ g·w over the unit's columns of the layer
that reads it: a head's columns of the attention output projection, a neuron's column of the FFN
output layer. A unit's importance is |Σ g·w| on each calibration batch, summed over batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from llmos.models._pruned import encoder_layers, head_size

__all__ = ["Importance", "keep_top", "removal_count", "taylor_importance"]


@dataclass(frozen=True)
class Importance:
    heads: list[torch.Tensor]  # per layer, one score per head (layers of a pruned model may differ)
    neurons: list[torch.Tensor]  # per layer, one score per FFN neuron
    batches: int


def removal_count(units: int, fraction: float) -> int:
    """How many of `units` a fraction removes from each layer: rounded to the nearest unit."""
    return round(units * fraction)


def keep_top(importance: list[torch.Tensor], fraction: float) -> list[list[int]]:
    """Per layer, the indices (in order) of the units left once the least important `fraction` is gone."""
    return [sorted(scores.topk(len(scores) - removal_count(len(scores), fraction)).indices.tolist())
            for scores in importance]


def taylor_importance(model: Any, batches: Iterable[dict[str, torch.Tensor]], task: str) -> Importance:
    """Accumulate |Σ g·w| per head and per FFN neuron of every layer over `batches` (eval mode)."""
    from llmos.run._evaluate import task_loss

    layers = encoder_layers(model)
    size = head_size(model.config)
    heads = [torch.zeros(layer.attention.self.num_attention_heads, dtype=torch.float64) for layer in layers]
    neurons = [torch.zeros(layer.intermediate.dense.out_features, dtype=torch.float64) for layer in layers]
    model.eval()  # no dropout: the score of a unit should not depend on a random mask
    count = 0
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss_sum, items, _ = task_loss(model, batch, task)
        (loss_sum / items.clamp(min=1)).backward()
        for i, layer in enumerate(layers):
            heads[i] += _head_scores(layer, len(heads[i]), size).abs().double()
            neurons[i] += _neuron_scores(layer).abs().double()
        count += 1
    model.zero_grad(set_to_none=True)
    return Importance(heads=heads, neurons=neurons, batches=count)


def _gw(param: torch.nn.Parameter) -> torch.Tensor:
    grad = param.grad if param.grad is not None else torch.zeros_like(param)
    return (grad * param).detach().float()


def _head_scores(layer: Any, n_heads: int, size: int) -> torch.Tensor:
    # attention.output.dense reads the concatenated heads: columns h·size … (h+1)·size − 1 are head h's.
    return _gw(layer.attention.output.dense.weight).view(-1, n_heads, size).sum((0, 2))


def _neuron_scores(layer: Any) -> torch.Tensor:
    return _gw(layer.output.dense.weight).sum(0)
