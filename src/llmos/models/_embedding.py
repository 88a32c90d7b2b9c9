"""Sentence embeddings: mean pooling over an encoder's last hidden state, L2-normalised."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["EmbeddingModel"]


class EmbeddingModel(torch.nn.Module):
    def __init__(self, encoder: Any) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-6)
        # Pool in the autocast dtype, normalise in fp32: cosine scores need the precision.
        return torch.nn.functional.normalize(pooled.float(), dim=-1)
