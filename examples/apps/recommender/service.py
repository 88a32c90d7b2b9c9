"""Recommendations from the llmos-served models, over HTTP, and the `/recommend` route.

`Recommender` asks a served embedding model (the retriever) for the candidates and, if given one,
a served pair classifier (the ranker) to order them. The evaluation and the web app call the same
`recommend`, so what is measured is what is served."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from rank import by_similarity, rerank, unit

CHUNK = 32  # texts per request


def embed(client: httpx.Client, url: str, model: str, texts: list[str]) -> list[list[float]]:
    """Each text's embedding, of length 1."""
    vectors: list[list[float]] = []
    for start in range(0, len(texts), CHUNK):
        answer = client.post(f"{url}/v1/embeddings", json={"model": model, "input": texts[start:start + CHUNK]})
        answer.raise_for_status()
        vectors += [unit(row["embedding"]) for row in answer.json()["data"]]
    return vectors


def relevance(client: httpx.Client, url: str, history: str, texts: list[str]) -> list[float]:
    """The ranker's probability that the user takes each item next (its label "1")."""
    probs: list[float] = []
    for start in range(0, len(texts), CHUNK):
        pairs = [[history, t] for t in texts[start:start + CHUNK]]
        answer = client.post(f"{url}/v1/classify", json={"input": pairs})
        answer.raise_for_status()
        probs += [row["probabilities"]["1"] for row in answer.json()["data"]]
    return probs


class Recommender:
    """Top-k items for a user of the training histories: retrieve `candidates`, then rerank them."""

    def __init__(self, items: Mapping[str, Any], histories: Mapping[str, Sequence[str]], retriever: Any,
                 ranker: Any = None, candidates: int = 30) -> None:
        from data import history_text

        self.items, self.histories, self.candidates = items, histories, candidates
        self.history_text = lambda user: history_text([items[i].title for i in histories[user]])
        self.client = httpx.Client(timeout=300)
        self.retriever, self.ranker = retriever, ranker  # llmos Servers: .url and .model
        ids = sorted(items)
        vectors = embed(self.client, retriever.url, retriever.model, [items[i].text for i in ids])
        self.vectors = dict(zip(ids, vectors, strict=True))

    def retrieve(self, user: str) -> list[str]:
        """Every unseen item by the retriever's similarity to the user's history."""
        query = embed(self.client, self.retriever.url, self.retriever.model, [self.history_text(user)])[0]
        return by_similarity(query, self.vectors, self.histories[user])

    def recommend(self, user: str, k: int) -> list[tuple[str, float | None]]:
        """(item id, ranker score or None) for the k best items, best first."""
        order = self.retrieve(user)
        if self.ranker is None:
            return [(i, None) for i in order[:k]]
        head = order[:max(self.candidates, k)]
        scores = relevance(self.client, self.ranker.url, self.history_text(user), [self.items[i].text for i in head])
        score_of = dict(zip(head, scores, strict=True))
        return [(i, score_of[i]) for i in rerank(head, scores)[:k]]


def create_app(recommender: Recommender) -> Any:
    """The example's web app: GET /recommend?user=u001&k=10."""
    from fastapi import FastAPI, HTTPException, Query

    app = FastAPI(title="recommender", description="items for a user, from llmos-served models")

    @app.get("/recommend")
    def recommend(user: str = Query(description="a user id of the histories, e.g. u001"),
                  k: int = Query(10, ge=1, le=50, description="how many items")) -> dict:
        if user not in recommender.histories:
            raise HTTPException(404, f"user: no user '{user}' in the histories; pick one of "
                                     f"{', '.join(sorted(recommender.histories)[:3])}, ... (data/interactions.csv)")
        items = recommender.items
        return {"user": user, "history": [items[i].title for i in recommender.histories[user]],
                "items": [{"id": i, "title": items[i].title, "category": items[i].category,
                           "score": score} for i, score in recommender.recommend(user, k)]}

    return app
