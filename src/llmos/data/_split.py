"""The seeded held-out split used when `data.eval` is null."""

from __future__ import annotations

import numpy as np

__all__ = ["split_indices"]


def _eval_counts(counts: np.ndarray, fraction: float) -> np.ndarray:
    """Eval rows per stratum: `fraction` of the total, shared out by largest remainder so each
    stratum gets its share, and never a stratum's last row (training must see every label)."""
    total = counts.sum()
    target = max(1, int(total * fraction + 0.5)) if total >= 2 else 0
    quota = counts * fraction
    cap = np.maximum(counts - 1, 0)
    take = np.minimum(np.floor(quota).astype(np.int64), cap)
    # Largest fractional part first; a stable sort keeps ties in stratum order, so it is deterministic.
    for stratum in np.argsort(-(quota - np.floor(quota)), kind="stable"):
        if take.sum() >= target:
            break
        if take[stratum] < cap[stratum]:
            take[stratum] += 1
    return take


def split_indices(n_rows: int, fraction: float, seed: int,
                  strata: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, eval) row positions: a seeded random `fraction` of the rows held out, the same
    share of each stratum (label) when `strata` is given. The same inputs give the same split."""
    strata = np.zeros(n_rows, dtype=np.int64) if strata is None else np.asarray(strata)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(strata, return_counts=True)
    held = [rng.permutation(np.flatnonzero(strata == cls))[:k]
            for cls, k in zip(classes, _eval_counts(counts, fraction), strict=True)]
    eval_rows = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    train_mask = np.ones(n_rows, dtype=bool)
    train_mask[eval_rows] = False
    return np.flatnonzero(train_mask), eval_rows
