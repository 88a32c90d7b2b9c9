"""Choosing the next token, and where a completion's text may be cut for stop strings.

`choose` works on a batch of logits with per-row settings (temperature, top-p, a seeded generator,
presence/frequency penalties, logprobs); one row that cannot be sampled fails alone, never its
neighbours. `sample_next` is the vectorised core for rows without seed, penalty or logprobs.
`scan_stop` is pure string logic. All are unit-tested with literals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Choice", "RowSampling", "choose", "sample_next", "scan_stop", "seeded_generator"]

_MIN_TEMPERATURE = 1e-5  # below this, dividing the logits overflows float32: the answer is greedy anyway


@dataclass
class RowSampling:
    """How one sequence picks its next token."""

    temperature: float = 1.0
    top_p: float = 1.0
    generator: Any = None  # a torch.Generator for a request with a seed; None: torch's global one
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    counts: dict[int, int] = field(default_factory=dict)  # generated token -> times (for the penalties)
    top_logprobs: int | None = None  # None: no logprobs; k: the chosen token's and the k most likely

    @property
    def plain(self) -> bool:
        return (self.generator is None and self.top_logprobs is None and not self.counts_matter)

    @property
    def counts_matter(self) -> bool:
        return bool(self.counts) and (self.presence_penalty != 0 or self.frequency_penalty != 0)


@dataclass(frozen=True)
class Choice:
    token: int
    logprob: float | None = None  # log-probability under the model (before penalties and temperature)
    top: tuple[tuple[int, float], ...] = ()  # the most likely tokens and their log-probabilities


def seeded_generator(seed: int, stream: int = 0) -> Any:
    """A CPU generator for choice `stream` of a request with `seed` (choices of one request differ)."""
    import torch

    return torch.Generator().manual_seed((seed + stream * 0x9E3779B97F4A7C15) % 2**63)


def _nucleus(probs: Any, top_p: Any) -> tuple[Any, Any]:
    """(probabilities sorted descending with those outside the nucleus zeroed, the sort order). The
    most likely token always survives, whatever top_p rounds to in float32 (1e-300 becomes 0)."""
    sorted_probs, order = probs.sort(-1, descending=True)
    before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the tokens ranked above each token
    drop = before >= top_p
    drop[..., 0] = False
    return sorted_probs.masked_fill(drop, 0.0), order


def sample_next(logits: Any, temperature: Sequence[float], top_p: Sequence[float], generator: Any = None) -> Any:
    """One token id per row of `logits` [batch, vocab]: greedy where temperature is 0, else sampled
    from the smallest set of tokens whose probability reaches top_p (nucleus sampling)."""
    import torch

    logits = logits.float()
    temps = torch.tensor(temperature, dtype=torch.float32, device=logits.device)
    greedy = logits.argmax(-1)
    if bool((temps == 0).all()):
        return greedy
    probs = (logits / temps.clamp(min=_MIN_TEMPERATURE).unsqueeze(-1)).softmax(-1)
    p = torch.tensor(top_p, dtype=torch.float32, device=logits.device).unsqueeze(-1)
    kept, order = _nucleus(probs, p)
    picked = torch.multinomial(kept, 1, generator=generator).squeeze(-1)
    sampled = order.gather(-1, picked.unsqueeze(-1)).squeeze(-1)
    return torch.where((temps == 0) | (temps < _MIN_TEMPERATURE), greedy, sampled)


def choose(logits: Any, rows: Sequence[RowSampling]) -> list[Choice | Exception]:
    """The next token of each row of `logits` [batch, vocab]; a row that fails gets its exception."""
    logits = logits.float()
    if all(row.plain for row in rows):
        try:
            tokens = sample_next(logits, [r.temperature for r in rows], [r.top_p for r in rows]).tolist()
            return [Choice(t) for t in tokens]
        except Exception:
            pass
    logp = logits.log_softmax(-1) if any(r.top_logprobs is not None for r in rows) else None
    out: list[Choice | Exception] = []
    for i, row in enumerate(rows):
        try:
            out.append(_choose_row(logits[i], logp[i] if logp is not None else None, row))
        except Exception as exc:
            out.append(exc)
    return out


def _choose_row(logits: Any, logp: Any, row: RowSampling) -> Choice:
    import torch

    if row.counts_matter:
        ids = torch.tensor(list(row.counts), dtype=torch.long, device=logits.device)
        times = torch.tensor(list(row.counts.values()), dtype=logits.dtype, device=logits.device)
        logits = logits.clone()
        logits[ids] -= row.frequency_penalty * times + row.presence_penalty
    if row.temperature < _MIN_TEMPERATURE:
        token = int(logits.argmax())
    else:
        probs = (logits / row.temperature).softmax(-1)
        if row.top_p < 1.0:
            probs, order = _nucleus(probs, row.top_p)
        else:
            order = None
        cdf = probs.cumsum(-1)
        total = float(cdf[-1])
        if not total > 0 or total != total:
            raise ValueError("the token probabilities are not finite")
        draw = float(torch.rand((), generator=row.generator)) * total
        index = min(int(torch.searchsorted(cdf, torch.tensor(draw, dtype=cdf.dtype), right=True)), len(cdf) - 1)
        token = int(order[index]) if order is not None else index
    if row.top_logprobs is None:
        return Choice(token)
    top: tuple[tuple[int, float], ...] = ()
    if row.top_logprobs > 0:
        values, ids = logp.topk(row.top_logprobs)
        top = tuple(zip(ids.tolist(), values.tolist(), strict=True))
    return Choice(token, float(logp[token]), top)


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
