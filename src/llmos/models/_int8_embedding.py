"""Token embeddings stored in int8 with one scale per row.

torchao's quantized tensors dequantize the whole table on every lookup; this module gathers only
the rows a batch needs, then scales them. Its state is two plain tensors (`qweight` int8,
`scale` float32), so it saves to safetensors like any other module.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["Int8Embedding", "quantize_embeddings", "swap_in_int8_embeddings"]

_QMAX = 127  # symmetric: -127..127, so negating a row never overflows


class Int8Embedding(torch.nn.Module):
    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.register_buffer("qweight", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(num_embeddings, 1, dtype=torch.float32))

    @classmethod
    def from_float(cls, emb: torch.nn.Embedding) -> Int8Embedding:
        weight = emb.weight.detach().float()
        new = cls(emb.num_embeddings, emb.embedding_dim, emb.padding_idx)
        scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / _QMAX
        new.qweight.copy_(torch.round(weight / scale).clamp(-_QMAX, _QMAX).to(torch.int8))
        new.scale.copy_(scale)
        return new

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = torch.nn.functional.embedding(ids, self.qweight).to(self.scale.dtype)
        return rows * torch.nn.functional.embedding(ids, self.scale)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized table, for code that reads `embedding.weight` (not for the forward pass)."""
        return self.qweight.to(self.scale.dtype) * self.scale

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 per-row"


def quantize_embeddings(model: Any, skip: set[str]) -> list[str]:
    """Replace every `nn.Embedding` not named in `skip` by an `Int8Embedding`, in place; returns
    the names replaced. Small tables (positions, token types) are kept: they cost nothing."""
    names = [name for name, mod in model.named_modules()
             if isinstance(mod, torch.nn.Embedding) and name not in skip and mod.num_embeddings >= 1024]
    for name in names:
        _replace(model, name, Int8Embedding.from_float(model.get_submodule(name)))
    return names


def swap_in_int8_embeddings(model: Any, names: list[str]) -> None:
    """Put empty `Int8Embedding`s where `names` say, so saved int8 tables load into them."""
    for name in names:
        emb = model.get_submodule(name)
        _replace(model, name, Int8Embedding(emb.num_embeddings, emb.embedding_dim, emb.padding_idx))


def _replace(model: Any, name: str, module: torch.nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)
