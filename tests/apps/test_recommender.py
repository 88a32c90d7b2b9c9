"""examples/apps/recommender: its ranking figures on literals, its data, then the whole app on the tiny model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "examples" / "apps" / "recommender"
sys.path.insert(0, str(APP))

import data  # noqa: E402  (the app's modules, found through APP)
from rank import (  # noqa: E402
    by_popularity,
    by_similarity,
    mean_figures,
    ndcg_at_k,
    popularity,
    recall_at_k,
    rerank,
)


def test_recall_and_ndcg_on_literals() -> None:
    assert recall_at_k(["a", "b", "c"], ["b", "z"], 2) == 0.5
    assert recall_at_k(["a", "b", "c"], ["c"], 2) == 0.0
    assert ndcg_at_k(["x", "a"], ["a"], 10) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["a", "b"], ["b", "a"], 10) == 1.0
    assert mean_figures({"u": ["a", "b"], "v": ["c", "d"]}, {"u": ["a"], "v": ["e"]}, 1) == \
        {"recall_at_1": 0.5, "ndcg_at_1": 0.5}


def test_orders_leave_out_what_the_user_took() -> None:
    order = popularity({"u": ["a", "b"], "v": ["b", "c"], "w": ["b", "a"]})
    assert order == ["b", "a", "c"]
    assert by_popularity(order, ["a", "b", "c", "d"], ["b"]) == ["a", "c", "d"]
    items = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [0.6, 0.8]}
    assert by_similarity([1.0, 0.0], items, ["a"]) == ["c", "b"]
    assert rerank(["a", "b", "c"], [0.2, 0.9, 0.2]) == ["b", "a", "c"]  # ties keep the retriever's order


def test_the_generated_data_holds_out_each_users_last_items() -> None:
    d = data.generate(data.SMALL)
    again = data.generate(data.SMALL)
    assert d["train"] == again["train"] and d["rows"] == again["rows"]  # the seed fixes everything
    assert len(d["items"]) == 6 * data.SMALL.items_per_category == len({i.id for i in d["items"]})
    for user, held in d["test"].items():
        assert len(held) == data.HELD_OUT and not set(held) & set(d["train"][user])
    train_text = {r["query"] + r["doc"] for r in d["rows"]["pairs-train"]}
    assert not train_text & {r["query"] + r["doc"] for r in d["rows"]["pairs-eval"]}
    labels = [r["label"] for r in d["rows"]["ranker-train"]]
    assert labels.count("0") == data.SMALL.negatives * labels.count("1")


@pytest.mark.timeout(900)
def test_the_recommender_runs_end_to_end_on_the_tiny_model(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(APP / "recommender.py"), "--tiny", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| fine-tuned retriever |" in done.stdout
    r = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "methods.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    methods = r["methods"]
    assert set(methods) == {"popularity", "untuned encoder", "fine-tuned retriever", "retriever + ranker"}
    assert all(0 <= v <= 1 for m in methods.values() for v in m.values())
    assert r["sizes"]["test_interactions"] == 2 * r["sizes"]["users"] == 180
    # The generated users follow categories a fine-tuned retriever can read from their history.
    assert methods["fine-tuned retriever"]["recall_at_10"] > methods["popularity"]["recall_at_10"] + 0.05
    assert methods["fine-tuned retriever"]["ndcg_at_10"] > methods["popularity"]["ndcg_at_10"]
    route = r["route"]
    assert route["status"] == 200 and len(route["answer"]["items"]) == 5
    assert not {i["title"] for i in route["answer"]["items"]} & set(route["answer"]["history"])
    unknown = route["unknown_user"]
    assert unknown["status"] == 404 and "user: no user 'nobody'" in unknown["answer"]["detail"]
