"""Encoders with attention heads and FFN neurons physically removed (structured pruning).

A Hugging Face BERT config cannot describe such a model: it derives the head size as
hidden_size / num_attention_heads (so 8 heads in a 384-wide layer would be 48 wide, not 32) and
gives every layer the same sizes. A pruned folder therefore keeps the parent's config and adds
`llmos_structure` to its config.json: how many heads and FFN neurons each layer kept. Loading
builds the parent-shaped model from the config, slices every layer down to that structure, then
loads the safetensors weights strictly, so a wrong shape is an error, never a silent re-init.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmos.errors import ModelError

__all__ = ["ENCODER_TYPES", "STRUCTURE_KEY", "encoder_layers", "from_pretrained", "head_size", "shrink",
           "shrink_layer", "structure_of"]

STRUCTURE_KEY = "llmos_structure"
# Model types whose layers are `encoder.layer[i]` with attention.self.{query,key,value},
# attention.output.dense, intermediate.dense and output.dense (the BERT layout).
ENCODER_TYPES = ("bert", "roberta", "xlm-roberta", "camembert", "electra")


def encoder_layers(model: Any) -> Any:
    """The ModuleList of BERT-style layers of a task model (or of an EmbeddingModel's encoder)."""
    hf = getattr(model, "encoder", model) if not hasattr(model, "base_model") else model
    layers = getattr(getattr(hf.base_model, "encoder", None), "layer", None)
    if layers is None or not hasattr(layers[0], "attention"):
        raise ModelError(f"{type(hf).__name__} has no BERT-style encoder layers to prune.",
                         hint=f"Structured pruning supports these model types: {', '.join(ENCODER_TYPES)}.")
    return layers


def head_size(config: Any) -> int:
    return int(config.hidden_size // config.num_attention_heads)


def shrink_layer(layer: Any, heads: Sequence[int], neurons: Sequence[int], size: int) -> None:
    """Keep only `heads` (indices) of the layer's attention and `neurons` of its FFN, in place."""
    import torch

    attn = layer.attention.self
    rows = torch.tensor([h * size + i for h in heads for i in range(size)], dtype=torch.long)
    for name in ("query", "key", "value"):
        setattr(attn, name, _slice(getattr(attn, name), rows, dim=0))
    layer.attention.output.dense = _slice(layer.attention.output.dense, rows, dim=1)
    attn.num_attention_heads = len(heads)
    attn.all_head_size = len(heads) * size
    keep = torch.tensor(list(neurons), dtype=torch.long)
    layer.intermediate.dense = _slice(layer.intermediate.dense, keep, dim=0)
    layer.output.dense = _slice(layer.output.dense, keep, dim=1)


def shrink(model: Any, heads: Sequence[Sequence[int]], neurons: Sequence[Sequence[int]]) -> None:
    """Keep heads[i] and neurons[i] (indices) of layer i, in place, and record the shapes in the config."""
    config = model.config
    for layer, keep_heads, keep_neurons in zip(encoder_layers(model), heads, neurons, strict=True):
        shrink_layer(layer, keep_heads, keep_neurons, head_size(config))
    setattr(config, STRUCTURE_KEY, {"attention_heads": [len(h) for h in heads],
                                    "intermediate_sizes": [len(n) for n in neurons]})


def _slice(linear: Any, index: Any, dim: int) -> Any:
    """A new Linear holding the rows (dim 0: outputs) or columns (dim 1: inputs) `index` of `linear`."""
    import torch

    weight = linear.weight.detach().index_select(dim, index.to(linear.weight.device)).clone()
    out_features, in_features = weight.shape
    new = torch.nn.Linear(in_features, out_features, bias=linear.bias is not None,
                          device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if linear.bias is not None:  # an output's bias goes with its row; inputs leave it whole
            new.bias.copy_(linear.bias.detach()[index] if dim == 0 else linear.bias.detach())
    new.train(linear.training)
    return new


def structure_of(config: Any) -> dict[str, list[int]] | None:
    """The per-layer head and neuron counts a pruned config carries, or None for a whole model."""
    value = getattr(config, STRUCTURE_KEY, None)
    return dict(value) if value else None


def from_pretrained(cls: Any, source: Path, config: Any = None, **kwargs: Any) -> Any:
    """`cls.from_pretrained(source, ...)`, rebuilding a pruned model's shapes first when its config says so."""
    from transformers import AutoConfig

    config = config if config is not None else AutoConfig.from_pretrained(str(source))
    structure = structure_of(config)
    if structure is None:
        return cls.from_pretrained(str(source), config=config, use_safetensors=True, **kwargs)
    model = cls.from_config(config)
    layers = encoder_layers(model)
    heads, neurons = structure["attention_heads"], structure["intermediate_sizes"]
    if len(heads) != len(layers) or len(neurons) != len(layers):
        raise ModelError(f"{source}/config.json: {STRUCTURE_KEY} describes {len(heads)} layers, the model has "
                         f"{len(layers)}.", hint="The folder was edited by hand; fetch it again from the registry.")
    for layer, n_heads, n_neurons in zip(layers, heads, neurons, strict=True):
        shrink_layer(layer, range(n_heads), range(n_neurons), head_size(config))
    _load_weights(model, source)
    return model.eval()


def _load_weights(model: Any, source: Path) -> None:
    from safetensors.torch import load_file

    index = source / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() \
        else ["model.safetensors"]
    state: dict[str, Any] = {}
    for name in files:
        state.update(load_file(str(source / name)))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"the weights in {source} do not fit its {STRUCTURE_KEY}: {str(exc).splitlines()[0]}",
                         hint="The folder is damaged; fetch it again from the registry.") from None
