"""Prefix reuse for generation: the KV cache of a prompt prefix that recent prompts share (a system
prompt, a few-shot preamble) is kept, and a new sequence that starts with it is prefilled from its
end instead of from its first token.

Which prefixes to keep is decided here from token ids alone (pure, unit-tested with literals); the
worker slices the keys and values out of a prefill it ran anyway, so keeping a prefix costs no
extra forward pass.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

__all__ = ["PrefixCache", "common_prefix"]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two id sequences."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    """Up to `max_entries` prefixes (least recently used leaves first), each at least `min_tokens`
    long; a new one is kept only if it is `min_tokens` longer than the longest kept prefix that the
    prompt already starts with (two questions that begin with the same word add nothing)."""

    def __init__(self, max_entries: int = 8, min_tokens: int = 16, remember: int = 32) -> None:
        self.max_entries, self.min_tokens = max_entries, min_tokens
        self.entries: OrderedDict[tuple[int, ...], Any] = OrderedDict()  # prefix ids -> per-layer (keys, values)
        self._recent: deque[tuple[int, ...]] = deque(maxlen=remember)
        self.hits = 0
        self.reused_tokens = 0

    def lookup(self, ids: Sequence[int]) -> tuple[tuple[int, ...], Any] | None:
        """The longest kept prefix of `ids` shorter than `ids` (one token at least is left to run)."""
        best: tuple[int, ...] | None = None
        for key in self.entries:
            if len(key) < len(ids) and (best is None or len(key) > len(best)) and tuple(ids[:len(key)]) == key:
                best = key
        if best is None:
            return None
        self.entries.move_to_end(best)
        self.hits += 1
        self.reused_tokens += len(best)
        return best, self.entries[best]

    def worth_keeping(self, ids: Sequence[int]) -> int:
        """The length of a new prefix of `ids` to keep (0: none), and remember `ids` for later prompts."""
        shared = max((common_prefix(ids, seen) for seen in self._recent), default=0)
        self._recent.append(tuple(ids))
        shared = min(shared, len(ids) - 1)
        if shared < self.min_tokens:
            return 0
        covered = max((len(key) for key in self.entries if len(key) <= shared and tuple(ids[:len(key)]) == key),
                      default=0)
        return shared if shared - covered >= self.min_tokens else 0

    def keep(self, ids: Sequence[int], kv: Any) -> None:
        self.entries[tuple(ids)] = kv
        self.entries.move_to_end(tuple(ids))
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
