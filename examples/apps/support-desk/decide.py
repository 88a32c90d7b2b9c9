"""The desk's decisions, as pure functions of numbers: no model, file or clock in here."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Operating:
    """A confidence threshold and what it gives on the set it was chosen on."""
    threshold: float  # answer automatically when confidence >= threshold (inf: never)
    precision: float  # share of automatic answers that are right (1.0 when there are none)
    coverage: float  # share of all messages answered automatically


def curve(confidence: Sequence[float], correct: Sequence[bool]) -> list[Operating]:
    """Every distinct threshold, from the most confident message down: what it answers and how well."""
    order = sorted(range(len(confidence)), key=lambda i: -confidence[i])
    points, right = [], 0
    for rank, i in enumerate(order, start=1):
        right += bool(correct[i])
        last_of_tie = rank == len(order) or confidence[order[rank]] < confidence[i]
        if last_of_tie:
            points.append(Operating(confidence[i], right / rank, rank / len(order)))
    return points


def pick_threshold(confidence: Sequence[float], correct: Sequence[bool], target_precision: float) -> Operating:
    """The lowest threshold whose automatic answers are at least `target_precision` right.

    Lowest, so the most messages are handled; a threshold is only taken if its precision meets the
    target, so a dip further down never lets a worse threshold through."""
    best = Operating(float("inf"), 1.0, 0.0)
    for point in curve(confidence, correct):
        if point.precision >= target_precision:
            best = point
    return best


def at_threshold(confidence: Sequence[float], correct: Sequence[bool], threshold: float) -> Operating:
    """Precision and coverage of a threshold chosen elsewhere, on another set."""
    taken = [ok for c, ok in zip(confidence, correct, strict=True) if c >= threshold]
    precision = sum(taken) / len(taken) if taken else 1.0
    return Operating(threshold, precision, len(taken) / len(confidence) if confidence else 0.0)


def recall_at_k(ranked: Sequence[Sequence[str]], truth: Sequence[str], k: int) -> float:
    """Share of queries whose right document is among their first k."""
    return sum(t in r[:k] for r, t in zip(ranked, truth, strict=True)) / len(truth) if truth else 0.0


def route(intent_confidence: float, faq_similarity: float, intent_threshold: float,
          faq_threshold: float) -> str:
    """template (the intent model is sure), faq (the best FAQ entry is close enough) or human."""
    if intent_confidence >= intent_threshold:
        return "template"
    if faq_similarity >= faq_threshold:
        return "faq"
    return "human"


def tfidf_rank(queries: Sequence[str], docs: Sequence[str], ids: Sequence[str]) -> list[list[str]]:
    """The keyword baseline for retrieval: each query's documents by TF-IDF cosine, best first."""
    def words(text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", text.lower())

    doc_words = [words(d) for d in docs]
    df = Counter(w for ws in doc_words for w in set(ws))
    idf = {w: math.log((1 + len(docs)) / (1 + n)) + 1 for w, n in df.items()}

    def vector(ws: list[str]) -> dict[str, float]:
        v = {w: c * idf.get(w, 0.0) for w, c in Counter(ws).items()}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        return {w: x / norm for w, x in v.items()}

    doc_vectors = [vector(ws) for ws in doc_words]
    ranked = []
    for q in queries:
        qv = vector(words(q))
        scores = [sum(x * d.get(w, 0.0) for w, x in qv.items()) for d in doc_vectors]
        ranked.append([ids[i] for i in sorted(range(len(ids)), key=lambda i: -scores[i])])
    return ranked
