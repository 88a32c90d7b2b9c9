"""Sequence packing for encoders: a batch's sentences laid end to end, without padding.

A padded batch pays for its longest sentence in every row: on SST-2-like text, a batch of 16
computes ~1.8x the tokens it holds. An encoder with absolute position embeddings (BERT, MiniLM,
RoBERTa, ...) adds positions before its layers, and from there on a token only meets others
through attention; so the layers can run on rows that hold several sentences, each attending
only to itself (a block-diagonal mask), and give each token the same result as in the padded
batch. `pack_rows` decides the rows (pure); `PackedEncoder` runs them; `verify` checks, when a
model loads, that the packed and padded outputs agree, and packing stays off where they do not.
"""

from __future__ import annotations

from typing import Any

import torch

from llmos.serve._batching import pack_rows

__all__ = ["PackedEncoder", "disable_packing", "enable_packing", "layer_stack", "verify", "why_not"]

ROW_MULTIPLE = 16

class PackedEncoder(torch.nn.Module):
    """Stands in for an encoder's layer stack (`base_model.encoder`). With `lengths` set (the
    tokens of each right-padded row), it packs, runs the layers once and unpacks; otherwise it
    calls the layers on the padded batch as they are."""

    def __init__(self, inner: torch.nn.Module, mask_kind: str) -> None:
        super().__init__()
        self.inner = inner
        self.mask_kind = mask_kind  # "bool" (SDPA: True attends) or "additive" (eager: 0 / -inf)
        self.lengths: list[int] | None = None

    def forward(self, hidden_states: torch.Tensor, attention_mask: Any = None, **kwargs: Any) -> Any:
        lengths = self.lengths
        if lengths is None or len(lengths) < 2:
            return self.inner(hidden_states, attention_mask=attention_mask, **kwargs)
        n, width, dim = hidden_states.shape
        rows = pack_rows(lengths)
        # Rounded up, as pad_batch does: a handful of row shapes, each one's kernels reused.
        row_len = -(-max(sum(lengths[i] for i in row) for row in rows) // ROW_MULTIPLE) * ROW_MULTIPLE
        src, dst, segments = [], [], torch.full((len(rows), row_len), -1, dtype=torch.long)
        for r, row in enumerate(rows):
            at = 0
            for i in row:
                src.append(torch.arange(i * width, i * width + lengths[i]))
                dst.append(torch.arange(r * row_len + at, r * row_len + at + lengths[i]))
                segments[r, at:at + lengths[i]] = i
                at += lengths[i]
        src_t, dst_t = torch.cat(src).to(hidden_states.device), torch.cat(dst).to(hidden_states.device)
        packed = hidden_states.new_zeros(len(rows) * row_len, dim)
        packed[dst_t] = hidden_states.reshape(n * width, dim)[src_t]
        segments = segments.to(hidden_states.device)
        # Padding at a row's end attends to itself only (a query with no key at all gives NaN).
        segments = torch.where(segments < 0, n + torch.arange(row_len, device=segments.device), segments)
        mask = self.row_mask(segments)
        if self.mask_kind == "additive":
            mask = torch.zeros(mask.shape, dtype=hidden_states.dtype, device=mask.device).masked_fill(
                ~mask, torch.finfo(hidden_states.dtype).min)
        kwargs.pop("position_ids", None)  # positions were added by the embeddings, per sentence
        result = self.inner(packed.view(len(rows), row_len, dim), attention_mask=mask, **kwargs)
        out = hidden_states.new_zeros(n * width, dim)
        out[src_t] = result.last_hidden_state.reshape(-1, dim)[dst_t].to(out.dtype)
        result.last_hidden_state = out.view(n, width, dim)
        return result


    @staticmethod
    def row_mask(segments: torch.Tensor) -> torch.Tensor:
        """[rows, 1, len, len], True where a token may attend: within its own sentence."""
        return (segments[:, :, None] == segments[:, None, :]).unsqueeze(1)


def _base(model: Any) -> Any:
    # A transformers model names its backbone base_model; llmos's EmbeddingModel holds it as .encoder.
    base = getattr(model, "base_model", None) or getattr(model, "encoder", None)
    return getattr(base, "base_model", base)


def layer_stack(model: Any, packed: PackedEncoder | None) -> tuple[Any, str, str]:
    """Where the model's encoder layer stack sits, as (owner, attribute, mask kind): inside the
    packing wrapper when there is one; (None, "", "") for a model without such a stack."""
    if packed is not None:
        return packed, "inner", packed.mask_kind
    base = _base(model)
    if base is None or not hasattr(getattr(base, "encoder", None), "layer"):
        return None, "", ""
    implementation = getattr(base.config, "_attn_implementation", None) or "eager"
    return base, "encoder", "bool" if implementation == "sdpa" else "additive"


def why_not(model: Any) -> str | None:
    """Why this model cannot be packed, or None if it has the shape packing needs."""
    base = _base(model)
    config = getattr(base, "config", None)
    if base is None or config is None:
        return "no transformers backbone found"
    if getattr(config, "is_decoder", False) or getattr(config, "is_encoder_decoder", False):
        return "not an encoder"
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return f"position_embedding_type is {config.position_embedding_type}, not absolute"
    if not hasattr(base, "embeddings") or not hasattr(getattr(base, "encoder", None), "layer"):
        return f"{type(base).__name__} has no embeddings + encoder.layer stack"
    implementation = getattr(config, "_attn_implementation", None) or "eager"
    if implementation not in ("sdpa", "eager"):
        return f"attention implementation {implementation} takes no explicit mask"
    return None


def enable_packing(model: Any) -> PackedEncoder | str:
    """Put a `PackedEncoder` in place of the model's layer stack; or say why not."""
    reason = why_not(model)
    if reason is not None:
        return reason
    base = _base(model)
    kind = "bool" if base.config._attn_implementation == "sdpa" else "additive"
    packed = PackedEncoder(base.encoder, kind)
    base.encoder = packed
    return packed


def disable_packing(model: Any, packed: PackedEncoder) -> None:
    """Put the model's own layer stack back where enable_packing put `packed` (packing refused)."""
    _base(model).encoder = packed.inner


def verify(model: Any, packed: PackedEncoder, vocab_size: int, rtol: float = 1e-4) -> str | None:
    """Run one batch of sentences of mixed lengths padded and packed, in fp32, and compare the
    layer stack's output at every real token (the heads only read those); None when they agree
    within `rtol` of the largest value, else what differed (packing must then stay off)."""
    lengths = [5, 19, 11, 3, 16, 8]
    generator = torch.Generator().manual_seed(0)
    width = max(lengths)
    ids = torch.randint(low=min(1000, vocab_size - 1), high=vocab_size, size=(len(lengths), width),
                        generator=generator)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    device = next(model.parameters()).device
    ids, mask = (ids * mask).to(device), mask.to(device)
    seen: list[torch.Tensor] = []
    hook = packed.register_forward_hook(lambda _m, _a, out: seen.append(out.last_hidden_state.float()))
    try:
        with torch.inference_mode():
            model(input_ids=ids, attention_mask=mask)
            packed.lengths = lengths
            model(input_ids=ids, attention_mask=mask)
    finally:
        packed.lengths = None
        hook.remove()
    real = mask.bool()
    padded, together = seen[0][real], seen[1][real]
    diff = float((padded - together).abs().max() / padded.abs().max().clamp(min=1e-12))
    return None if diff <= rtol else f"packed and padded hidden states differ by {diff:.1e} of their scale (> {rtol:g})"
