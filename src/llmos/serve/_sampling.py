"""Choosing the next token, and where a completion's text may be cut for stop strings.

`sample_next` works on a batch of logits with per-row temperature and top-p; `scan_stop` is pure
string logic. Both are unit-tested with literals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["sample_next", "scan_stop"]


def sample_next(logits: Any, temperature: Sequence[float], top_p: Sequence[float], generator: Any = None) -> Any:
    """One token id per row of `logits` [batch, vocab]: greedy where temperature is 0, else sampled
    from the smallest set of tokens whose probability reaches top_p (nucleus sampling)."""
    import torch

    logits = logits.float()
    temps = torch.tensor(temperature, dtype=torch.float32, device=logits.device)
    greedy = logits.argmax(-1)
    if bool((temps == 0).all()):
        return greedy
    scaled = logits / temps.clamp(min=1e-5).unsqueeze(-1)
    probs = scaled.softmax(-1)
    sorted_probs, order = probs.sort(-1, descending=True)
    before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the tokens ranked above each token
    p = torch.tensor(top_p, dtype=torch.float32, device=logits.device).unsqueeze(-1)
    sorted_probs = sorted_probs.masked_fill(before >= p, 0.0)  # the first token always survives
    picked = torch.multinomial(sorted_probs, 1, generator=generator).squeeze(-1)
    sampled = order.gather(-1, picked.unsqueeze(-1)).squeeze(-1)
    return torch.where(temps == 0, greedy, sampled)


def scan_stop(text: str, stops: Sequence[str]) -> tuple[int, bool]:
    """(characters of `text` that are safe to send, whether a stop string occurred).

    With a stop string in `text`, everything before its first occurrence is final. Otherwise the
    longest tail of `text` that could still grow into a stop string is held back.
    """
    first = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    if first >= 0:
        return first, True
    hold = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                hold = max(hold, k)
                break
    return len(text) - hold, False
