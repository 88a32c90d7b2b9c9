"""An encoder's layer stack under `torch.compile`, with one graph per kind of batch.

Left to itself, dynamo specialises on whatever it first sees: a width of 32 tokens, a batch of
one, the keyword arguments of the call (which differ between a packed and a padded batch). Any
new shape in traffic would then stop the worker for a recompilation of seconds to minutes. So
`CompiledStack` calls the compiled code with two tensors only (hidden states, and a mask of the
kind the attention layers take) and marks their token dimensions dynamic, and their batch
dimension too when it is above one: exactly two graphs, one for a single row and one for
several, both built while the server warms up.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["CompiledStack"]


class CompiledStack(torch.nn.Module):
    """Stands in for a layer stack (`inner`: hidden states and attention mask in, an output with
    `last_hidden_state` out); `mask_kind` is "bool" (SDPA: True attends) or "additive" (eager)."""

    def __init__(self, inner: torch.nn.Module, mask_kind: str) -> None:
        super().__init__()
        self.inner = inner
        self.mask_kind = mask_kind
        self._compiled = torch.compile(self._layers, dynamic=False)  # dynamic where marked, below

    def _layers(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.inner(hidden_states, attention_mask=mask).last_hidden_state

    def forward(self, hidden_states: torch.Tensor, attention_mask: Any = None, **kwargs: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions

        if kwargs.get("encoder_hidden_states") is not None:  # cross-attention: not what was compiled
            return self.inner(hidden_states, attention_mask=attention_mask, **kwargs)
        rows, width, _ = hidden_states.shape
        mask = attention_mask if attention_mask is not None else self._full_mask(rows, width, hidden_states)
        torch._dynamo.mark_dynamic(hidden_states, 1)
        for dim in range(2, mask.dim()):
            if mask.shape[dim] == width:
                torch._dynamo.mark_dynamic(mask, dim)
        if rows > 1:
            torch._dynamo.mark_dynamic(hidden_states, 0)
            if mask.shape[0] == rows:
                torch._dynamo.mark_dynamic(mask, 0)
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=self._compiled(hidden_states, mask))

    def _full_mask(self, rows: int, width: int, like: torch.Tensor) -> torch.Tensor:
        """Every token attends to every token, in the form the attention layers take."""
        if self.mask_kind == "bool":
            return torch.ones(rows, 1, width, width, dtype=torch.bool, device=like.device)
        return torch.zeros(rows, 1, width, width, dtype=like.dtype, device=like.device)
