"""Ask the served models about every message, then choose the thresholds and measure the desk.

The models are served from the registry by llmos (`llmos.serve`, a background thread of this
process) and asked over HTTP, the way any other program of the shop would ask them."""

from __future__ import annotations

from dataclasses import asdict

import httpx
from data import COVERED, NONE, faq_doc
from decide import at_threshold, curve, pick_threshold, recall_at_k, route, tfidf_rank

import llmos

CHUNK = 32  # texts per request


def classify(url: str, texts: list[str]) -> list[dict[str, float]]:
    """Each text's probability per intent."""
    probs = []
    for start in range(0, len(texts), CHUNK):
        answer = httpx.post(f"{url}/v1/classify", json={"input": texts[start:start + CHUNK]}, timeout=120)
        answer.raise_for_status()
        probs += [row["probabilities"] for row in answer.json()["data"]]
    return probs


def embed(url: str, model: str, texts: list[str]) -> list[list[float]]:
    """Each text's embedding, scaled to length 1 (so a dot product is the cosine similarity)."""
    vectors = []
    for start in range(0, len(texts), CHUNK):
        answer = httpx.post(f"{url}/v1/embeddings", json={"model": model, "input": texts[start:start + CHUNK]},
                            timeout=120)
        answer.raise_for_status()
        vectors += [row["embedding"] for row in answer.json()["data"]]
    return [[x / (sum(y * y for y in v) ** 0.5 or 1.0) for x in v] for v in vectors]


def search(queries: list[list[float]], docs: list[list[float]], ids: list[str]) -> list[list[tuple[str, float]]]:
    """Every FAQ entry for each query, best first, with its similarity."""
    ranked = []
    for q in queries:
        scored = [(i, sum(a * b for a, b in zip(q, d, strict=True))) for i, d in zip(ids, docs, strict=True)]
        ranked.append(sorted(scored, key=lambda s: -s[1]))
    return ranked


def ask_models(refs: dict[str, str], splits: dict[str, list[dict]], faq: list[dict]) -> dict:
    """Probabilities and FAQ rankings for the calibration, test and FAQ-eval messages."""
    sets = {"calib": splits["calib"], "test": splits["test"], "faq-eval": splits["faq-eval"]}
    texts = {name: [r.get("text") or r["query"] for r in rows] for name, rows in sets.items()}
    ids = [e["id"] for e in faq]
    with llmos.serve(refs["intents"], server={"port": 0}) as server:
        probs = {name: classify(server.url, t) for name, t in texts.items() if name != "faq-eval"}
    with llmos.serve(refs["faq"], server={"port": 0}) as server:
        docs = embed(server.url, server.model, [faq_doc(e) for e in faq])
        ranked = {name: search(embed(server.url, server.model, t), docs, ids) for name, t in texts.items()}
    return {"probs": probs, "ranked": ranked, "rows": sets}


def run(refs: dict[str, str], splits: dict[str, list[dict]], faq: list[dict], *,
        target_precision: float) -> dict:
    """Every figure the desk reports (results.json)."""
    seen = ask_models(refs, splits, faq)
    rows, probs, ranked = seen["rows"], seen["probs"], seen["ranked"]

    def intent_view(name: str) -> tuple[list[float], list[bool], list[str]]:
        predicted = [max(p, key=p.get) for p in probs[name]]
        return ([max(p.values()) for p in probs[name]],
                [r["label"] == guess for r, guess in zip(rows[name], predicted, strict=True)], predicted)

    calib_conf, calib_ok, _ = intent_view("calib")
    test_conf, test_ok, test_pred = intent_view("test")
    chosen = pick_threshold(calib_conf, calib_ok, target_precision)
    covered_test = [ok for r, ok in zip(rows["test"], test_ok, strict=True) if r["label"] != NONE]

    # The FAQ threshold: its held-out questions (right when the best entry is theirs) and the
    # calibration complaints (never answered by the FAQ) are the set it is chosen on.
    faq_truth = [r["id"] for r in rows["faq-eval"]]
    faq_sim = [r[0][1] for r in ranked["faq-eval"]]
    faq_ok = [r[0][0] == t for r, t in zip(ranked["faq-eval"], faq_truth, strict=True)]
    complaints = [r[0][1] for r, row in zip(ranked["calib"], rows["calib"], strict=True)
                  if row["intent"] == "complaint"]
    faq_chosen = pick_threshold(faq_sim + complaints, faq_ok + [False] * len(complaints), target_precision)

    routes = [route(c, r[0][1], chosen.threshold, faq_chosen.threshold)
              for c, r in zip(test_conf, ranked["test"], strict=True)]
    return _finite({
        "target_precision": target_precision,
        "sizes": {name: len(r) for name, r in rows.items()} | {"faq_entries": len(faq),
                                                               "covered_intents": len(COVERED)},
        "intent_accuracy": sum(covered_test) / len(covered_test),
        "retrieval": _retrieval(ranked["faq-eval"], rows["faq-eval"], faq),
        "intent_threshold": asdict(chosen) | {"test": asdict(at_threshold(test_conf, test_ok, chosen.threshold))},
        "faq_threshold": asdict(faq_chosen),
        "curves": {"calib": [asdict(p) for p in curve(calib_conf, calib_ok)],
                   "test": [asdict(p) for p in curve(test_conf, test_ok)]},
        "routes": _route_shares(rows["test"], routes, test_pred),
        # what happened to each test message: the desk's decision and what it was based on
        "test_messages": [{"text": row["text"], "intent": row["intent"], "route": how, "predicted": guess,
                           "confidence": conf, "faq": found[0][0], "similarity": found[0][1]}
                          for row, how, guess, conf, found in zip(rows["test"], routes, test_pred, test_conf,
                                                                  ranked["test"], strict=True)],
        # each calibration message's confidence and whether its intent was right, to check the choice
        "calib_scores": [[c, ok] for c, ok in zip(calib_conf, calib_ok, strict=True)],
    })


def _finite(value: object) -> object:
    """JSON has no infinity: a threshold nothing reaches (no automatic answers) is written as null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return None if value == float("inf") else value


def _retrieval(ranked: list[list[tuple[str, float]]], rows: list[dict], faq: list[dict]) -> dict:
    """recall@1 and @5 of the fine-tuned retriever, and of TF-IDF on the same questions (the baseline)."""
    truth = [r["id"] for r in rows]
    keyword = tfidf_rank([r["query"] for r in rows], [faq_doc(e) for e in faq], [e["id"] for e in faq])
    tuned = [[i for i, _ in r] for r in ranked]
    return {f"{name}_at_{k}": recall_at_k(order, truth, k)
            for name, order in (("recall", tuned), ("tfidf_recall", keyword)) for k in (1, 5)}


def _route_shares(rows: list[dict], routes: list[str], predicted: list[str]) -> dict:
    """How the test messages were handled, overall and by what they really were."""
    groups = {"all": lambda r: True, "covered": lambda r: r["label"] != NONE,
              "product_question": lambda r: r["intent"] == "product_question",
              "complaint": lambda r: r["intent"] == "complaint"}
    out = {}
    for name, keep in groups.items():
        picked = [route for r, route in zip(rows, routes, strict=True) if keep(r)]
        out[name] = {k: picked.count(k) / len(picked) for k in ("template", "faq", "human")} | {"n": len(picked)}
    templated = [r["label"] == p for r, route, p in zip(rows, routes, predicted, strict=True) if route == "template"]
    out["template_precision"] = sum(templated) / len(templated) if templated else 1.0
    out["automatic"] = out["all"]["template"] + out["all"]["faq"]
    return out
