"""Exact match for instruction tuning: the model's greedy answer to each eval conversation (all turns
but the last) against that conversation's last assistant turn, compared after stripping whitespace.

Bounded: at most `limit` conversations and `max_new_tokens` tokens each, sharded over ranks.
"""

from __future__ import annotations

from typing import Any

import torch

from llmos.models import greedy_answers
from llmos.run._dist import Dist

__all__ = ["exact_match"]


def exact_match(model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], *, limit: int,
                max_new_tokens: int, dist: Dist) -> dict[str, float]:
    """{"exact_match": share of the first `limit` conversations answered exactly}."""
    mine = conversations[:limit][dist.rank::dist.world_size]
    answers = greedy_answers(model, tokenizer, [c[:-1] for c in mine], max_new_tokens=max_new_tokens,
                             device=dist.device)
    hits = sum(a.strip() == c[-1]["content"].strip() for a, c in zip(answers, mine, strict=True))
    totals = dist.sum(torch.tensor([hits, len(mine)], dtype=torch.float64))
    return {"exact_match": (totals[0] / totals[1].clamp(min=1)).item()}
