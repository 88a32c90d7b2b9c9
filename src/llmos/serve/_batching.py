"""Batch formation and overload decisions as pure functions: a snapshot in, a decision out.

The worker thread calls `form_batch` each time the queue changes or a wait runs out; unit tests
call it with literals. No clock, no locks, no tensors here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CALL_TOKENS", "ROW_TOKENS", "BatchDecision", "BatchPolicy", "Waiting", "form_batch", "length_buckets",
           "pack_rows", "retry_after_s"]


@dataclass(frozen=True)
class Waiting:
    """One queued input: when it arrived and how many tokens it holds."""

    arrived_s: float
    n_tokens: int


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int
    max_batch_tokens: int  # padded cost: batch size x longest input
    max_wait_ms: float
    linger_ms: float = 0.0  # see form_batch (the serve spec's default is 20)


@dataclass(frozen=True)
class BatchDecision:
    """Run the inputs at `take` (indices into the queue) now, or wait `wait_s` for more."""

    take: tuple[int, ...] = ()
    wait_s: float | None = None  # None with an empty `take`: nothing queued, sleep until woken


def form_batch(queue: Sequence[Waiting], now_s: float, policy: BatchPolicy,
               pass_end_s: float | None = None) -> BatchDecision:
    """Choose the next batch from `queue` (in arrival order).

    The oldest input always goes first, so nothing starves. The others join by closeness of
    length to it (less padding), while the batch stays within `max_batch_size` and the padded
    token budget. The batch runs at once when it is full (no more inputs fit, or a waiting input
    could not join), else when the oldest has waited `max_wait_ms`; before that, wait the rest.

    Lingering (`linger_ms` > 0; `pass_end_s`: when the previous forward pass ended): right after
    a pass, the inputs queued during it have all waited `max_wait_ms` already, while the clients
    that pass answered are sending their next requests. Closed-loop clients (a fixed pool that
    sends again on each answer) would otherwise settle into two half-size batches that take
    turns. So, up to `linger_ms` after the pass ended, a batch that is not full keeps waiting as
    long as inputs keep arriving less than `max_wait_ms` apart (counted from the pass's end
    or the newest arrival, whichever is later); a pause that long, or the linger, ends it.
    """
    if not queue:
        return BatchDecision()
    oldest = queue[0]
    chosen, longest = [0], oldest.n_tokens
    # Stable order: closest length first, then arrival.
    others = sorted(range(1, len(queue)), key=lambda i: (abs(queue[i].n_tokens - oldest.n_tokens), i))
    full = False
    for i in others:
        if len(chosen) >= policy.max_batch_size:
            full = True
            break
        grown = max(longest, queue[i].n_tokens)
        if grown * (len(chosen) + 1) > policy.max_batch_tokens:
            full = True  # this one would overflow the budget: no point waiting for more
            continue
        chosen.append(i)
        longest = grown
    full = full or len(chosen) >= policy.max_batch_size
    if full:
        return BatchDecision(take=tuple(sorted(chosen)))
    wait_left_s = policy.max_wait_ms / 1000 - (now_s - oldest.arrived_s)
    if wait_left_s > 0:
        return BatchDecision(wait_s=wait_left_s)
    if policy.linger_ms > 0 and pass_end_s is not None:
        linger_left_s = pass_end_s + policy.linger_ms / 1000 - now_s
        newest_s = max(pass_end_s, max(w.arrived_s for w in queue))
        quiet_left_s = newest_s + policy.max_wait_ms / 1000 - now_s
        if linger_left_s > 0 and quiet_left_s > 0:
            return BatchDecision(wait_s=min(linger_left_s, quiet_left_s))
    return BatchDecision(take=tuple(sorted(chosen)))


def retry_after_s(outstanding: int, items_per_s: float, floor_s: int = 1, ceiling_s: int = 60) -> int:
    """Seconds a refused client should wait: the time to work off what is outstanding now,
    in whole seconds (HTTP's Retry-After has no fractions), within [floor_s, ceiling_s]."""
    if items_per_s <= 0:
        return floor_s
    return max(floor_s, min(ceiling_s, math.ceil(outstanding / items_per_s)))


# Rows of about this many tokens: attention costs row length x tokens, so a row much longer than
# the sentences in it spends more on attention than packing saves; 128 keeps it to a few percent
# of a small encoder's layer cost while still holding ~5 sentences of ordinary length.
ROW_TOKENS = 128


def pack_rows(lengths: Sequence[int], row_tokens: int = ROW_TOKENS) -> list[list[int]]:
    """Sentences (indices into `lengths`) per row, first-fit by decreasing length into rows of
    `max(row_tokens, longest)` tokens; a sentence never splits. Rows keep sentences in the order
    they were placed, longest first."""
    if not lengths:
        return []
    capacity = max(row_tokens, max(lengths))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for r, left in enumerate(room):
            if lengths[i] <= left:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


# What one more call of a runtime that cannot pack costs, in token positions: the fixed part of a
# call (dispatch, per-layer set-up) and the lower efficiency of a smaller matrix product. For a
# MiniLM-sized int8 ONNX encoder on 2 cores that is a few dozen positions; a slightly high value only
# merges buckets (more padding), a low one splits batches into slivers.
CALL_TOKENS = 48


def length_buckets(lengths: Sequence[int], call_tokens: int = CALL_TOKENS) -> list[list[int]]:
    """Split a batch (indices into `lengths`) into calls that each pad to their own longest input,
    choosing the split that minimises positions run (each call: its size x its longest) plus
    `call_tokens` per call. The best split groups inputs of neighbouring lengths, so it is found
    exactly over the sorted lengths (O(n^2), n is a batch). Calls come shortest first, each in
    length order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    n = len(order)
    best = [0.0] + [math.inf] * n  # best[j]: cost of the first j sorted inputs
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = lengths[order[j - 1]]  # sorted: the last input of a call is its longest
        for i in range(j):
            cost = best[i] + call_tokens + (j - i) * longest
            if cost < best[j]:
                best[j], cut[j] = cost, i
    calls: list[list[int]] = []
    j = n
    while j > 0:
        calls.append(order[cut[j]:j])
        j = cut[j]
    return calls[::-1]
