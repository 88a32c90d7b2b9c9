"""The figures: the model's accuracy on held-out headlines, the alert latency, the kill/restart check."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import rules

CHUNK = 64  # texts per request


def accuracy(url: str, test: list[dict]) -> dict:
    """The served model's accuracy on the held-out test set: all of it, seen and unseen templates."""
    predicted = []
    for start in range(0, len(test), CHUNK):
        answer = httpx.post(f"{url}/v1/classify", timeout=120,
                            json={"input": [r["text"] for r in test[start:start + CHUNK]]})
        answer.raise_for_status()
        predicted += [row["label"] for row in answer.json()["data"]]
    version = httpx.get(f"{url}/v1/models", timeout=30).json()["data"][0].get("version")
    right = [p == r["label"] for p, r in zip(predicted, test, strict=True)]

    def share(keep) -> float:
        picked = [ok for ok, r in zip(right, test, strict=True) if keep(r)]
        return sum(picked) / len(picked) if picked else float("nan")

    return {"n": len(test), "version": version, "all": share(lambda r: True),
            "seen_templates": share(lambda r: r["seen_template"]),
            "unseen_templates": share(lambda r: not r["seen_template"])}


def percentile(xs: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of xs."""
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))] if ordered else float("nan")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def latency(run: dict) -> dict:
    """Arrival of a headline (appended or POSTed) to its alert at the webhook; and to its label."""
    alerts = [r["received_at"] - r["alert"]["sent_at"] for r in run["received"]]
    labelled = [r["scored_at"] - r["sent_at"] for r in read_jsonl(run["state"] / "scored.jsonl")]
    return {"alerts": len(alerts), "alert_p50_s": percentile(alerts, 50), "alert_p95_s": percentile(alerts, 95),
            "alert_max_s": max(alerts, default=float("nan")), "headlines": len(labelled),
            "label_p50_s": percentile(labelled, 50), "label_p95_s": percentile(labelled, 95)}


def restart_check(run: dict, rows: list[dict]) -> dict:
    """After a kill: every headline labelled exactly once, every alert sent exactly once, and the
    alerts exactly those an uninterrupted monitor decides on the same labels."""
    scored = read_jsonl(run["state"] / "scored.jsonl")
    logged = read_jsonl(run["state"] / "alerts.jsonl")
    sent = [r["alert"]["id"] for r in run["received"]]
    ids = [r["id"] for r in scored]
    expected = [a["id"] for a in rules.replay(scored, rules.Rules())]
    return {"killed": run["killed"], "headlines_sent": len(rows), "labelled": len(ids),
            "labelled_twice": len(ids) - len(set(ids)), "lost": len({r["id"] for r in rows} - set(ids)),
            "alerts_received": len(sent), "alerts_received_twice": len(sent) - len(set(sent)),
            "alerts_logged": len(logged), "same_as_uninterrupted": sorted(sent) == sorted(expected)
            and sorted(a["id"] for a in logged) == sorted(expected)}


def stream_accuracy(run: dict, rows: list[dict]) -> float:
    truth = {r["id"]: r["label"] for r in rows}
    scored = read_jsonl(run["state"] / "scored.jsonl")
    return sum(truth[r["id"]] == r["label"] for r in scored) / len(scored)
