"""The recommender's decisions and figures, as pure functions of numbers and ids: no model or file here."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence


def unit(vector: Sequence[float]) -> list[float]:
    """`vector` scaled to length 1, so a dot product is the cosine similarity."""
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def by_similarity(query: Sequence[float], items: Mapping[str, Sequence[float]], seen: Iterable[str]) -> list[str]:
    """Every item the user has not taken, most similar first (ties by id, so the order is stable)."""
    skip = set(seen)
    scored = [(-sum(a * b for a, b in zip(query, v, strict=True)), i) for i, v in items.items() if i not in skip]
    return [i for _, i in sorted(scored)]


def popularity(histories: Mapping[str, Sequence[str]]) -> list[str]:
    """Every item anyone took, most taken first (ties by id)."""
    counts = Counter(i for h in histories.values() for i in h)
    return [i for i, _ in sorted(counts.items(), key=lambda c: (-c[1], c[0]))]


def by_popularity(order: Sequence[str], all_items: Iterable[str], seen: Iterable[str]) -> list[str]:
    """The popularity order without what the user took; items nobody took come last, by id."""
    skip, known = set(seen), set(order)
    return [i for i in order if i not in skip] + sorted(i for i in all_items if i not in known and i not in skip)


def rerank(candidates: Sequence[str], scores: Sequence[float]) -> list[str]:
    """The candidates by the ranker's score, best first; equal scores keep the retriever's order."""
    return [c for _, _, c in sorted(zip((-s for s in scores), range(len(candidates)), candidates, strict=True))]


def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Share of the user's held-out items among the first k."""
    rel = set(relevant)
    return len(rel & set(ranked[:k])) / len(rel) if rel else 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Normalised discounted cumulative gain at k, each held-out item worth 1."""
    rel = set(relevant)
    dcg = sum(1 / math.log2(pos + 2) for pos, i in enumerate(ranked[:k]) if i in rel)
    ideal = sum(1 / math.log2(pos + 2) for pos in range(min(k, len(rel))))
    return dcg / ideal if ideal else 0.0


def mean_figures(rankings: Mapping[str, Sequence[str]], truth: Mapping[str, Sequence[str]], k: int) -> dict:
    """recall@k and NDCG@k averaged over the users of `truth`."""
    users = sorted(truth)
    return {f"recall_at_{k}": sum(recall_at_k(rankings[u], truth[u], k) for u in users) / len(users),
            f"ndcg_at_{k}": sum(ndcg_at_k(rankings[u], truth[u], k) for u in users) / len(users)}
