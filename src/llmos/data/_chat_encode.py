"""Conversations -> token rows for instruction tuning: the chat template applied, a mask of the
tokens learned (assistant turns only), and optional packing of several conversations per row.

The mask comes from character spans: each assistant turn is the text the template adds between
"the conversation so far + the assistant header" and "the conversation including this turn", so it
covers the answer and the template's end-of-turn token (the model learns to stop) but never the
whitespace after it, the header, the system prompt or the user's words. Tokens are mapped to spans
by their offsets, which holds for any template whose renders of a conversation's prefixes are
prefixes of its render.

Packed rows keep conversations apart through positions that restart at 0 at each conversation:
given position ids and no attention mask, transformers builds a block-diagonal causal mask, so a
token attends only to its own conversation (tested equal to running each conversation alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmos.errors import DataError

__all__ = ["ChatEncoded", "collate_chat", "encode_chat", "tokenize_chat"]


@dataclass(frozen=True)
class ChatEncoded:
    """Rows of token ids; `label_mask[r][t]` is 1 where token t of row r is learned; `segments[r]`
    the lengths of the conversations packed in row r, in order (one per row without packing)."""

    input_ids: list[list[int]]
    label_mask: list[list[int]]
    segments: list[list[int]]
    dropped: int = 0  # conversations left out: nothing learned was left after truncation

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> list[int]:
        return [len(row) for row in self.input_ids]


def tokenize_chat(conversation: list[dict[str, str]], tokenizer: Any) -> tuple[list[int], list[int]]:
    """(token ids, learned-token mask) of one conversation rendered by the tokenizer's chat template."""
    render = tokenizer.apply_chat_template
    text = render(conversation, tokenize=False)
    spans = []
    for i, message in enumerate(conversation):
        if message["role"] != "assistant":
            continue
        before = render(conversation[:i], tokenize=False, add_generation_prompt=True) if i else ""
        upto = render(conversation[: i + 1], tokenize=False)
        if not (text.startswith(before) and text.startswith(upto) and len(upto) > len(before)):
            raise DataError("the tokenizer's chat template does not render a conversation's first turns as a "
                            "prefix of the whole, so assistant turns cannot be told apart.",
                            hint="Use a model whose chat template appends turns (ChatML, Llama, ...).")
        spans.append((len(before), len(upto.rstrip())))  # the newline after the end-of-turn token is not learned
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(a <= start < b for a, b in spans)) for start, _ in enc["offset_mapping"]]
    return list(enc["input_ids"]), mask


def encode_chat(conversations: list[list[dict[str, str]]], tokenizer: Any, *, max_length: int,
                packing: bool) -> ChatEncoded:
    """Tokenize, cut each conversation to `max_length` tokens (dropping any with nothing learned left),
    then pack them in order into rows of up to `max_length` tokens, or keep one per row."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise DataError("this model's tokenizer has no chat template, so instruction tuning cannot format turns.",
                        hint="Pick a chat model (e.g. model.name: smollm2-135m) or remove the sft section.")
    rows, dropped = [], 0
    for conversation in conversations:
        ids, mask = tokenize_chat(conversation, tokenizer)
        ids, mask = ids[:max_length], mask[:max_length]
        if sum(mask[1:]) == 0:  # the first token of a row is never predicted
            dropped += 1
            continue
        rows.append((ids, mask))
    if not rows:
        raise DataError(f"no conversation keeps an assistant token within model.max_length={max_length}.",
                        hint="Raise model.max_length.")
    groups = _pack([len(ids) for ids, _ in rows], max_length) if packing else [[i] for i in range(len(rows))]
    return ChatEncoded(input_ids=[[t for i in g for t in rows[i][0]] for g in groups],
                       label_mask=[[m for i in g for m in rows[i][1]] for g in groups],
                       segments=[[len(rows[i][0]) for i in g] for g in groups], dropped=dropped)


def _pack(lengths: list[int], max_length: int) -> list[list[int]]:
    """Consecutive conversations share a row while they fit: deterministic, and order is kept."""
    groups: list[list[int]] = []
    used = max_length
    for i, length in enumerate(lengths):
        if used + length > max_length:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += length
    return groups


def collate_chat(encoded: ChatEncoded, indices: list[int], *, pad_id: int) -> dict[str, Any]:
    """input_ids, labels (-100 where nothing is learned) and position_ids that restart at each
    conversation; padding is one more segment of its own. No attention mask: see the module doc."""
    import torch

    width = max(len(encoded.input_ids[i]) for i in indices)
    ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    labels = torch.full((len(indices), width), -100, dtype=torch.long)
    positions = torch.zeros((len(indices), width), dtype=torch.long)
    for r, i in enumerate(indices):
        row = torch.tensor(encoded.input_ids[i], dtype=torch.long)
        n = len(row)
        ids[r, :n] = row
        learned = torch.tensor(encoded.label_mask[i], dtype=torch.bool)
        labels[r, :n] = torch.where(learned, row, -100)
        positions[r] = torch.cat([torch.arange(s) for s in (*encoded.segments[i], width - n) if s])
    return {"input_ids": ids, "labels": labels, "position_ids": positions}
