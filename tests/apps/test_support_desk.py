"""examples/apps/support-desk: its decisions on literals, then the whole app on the tiny model."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "examples" / "apps" / "support-desk"
_NAMES = ("data", "decide", "desk", "measure", "report")


def _load_app() -> dict:
    """The app's modules, imported by their plain names as desk.py does, without leaving those names
    in sys.modules (other apps' tests have modules called data and report too)."""
    saved = {n: sys.modules.pop(n) for n in _NAMES if n in sys.modules}
    sys.path.insert(0, str(APP))
    try:
        return {n: importlib.import_module(n) for n in ("data", "decide", "desk")}
    finally:
        sys.path.remove(str(APP))
        for n in _NAMES:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


_APP = _load_app()
data, desk = _APP["data"], _APP["desk"]
_decide = _APP["decide"]
at_threshold, curve, pick_threshold = _decide.at_threshold, _decide.curve, _decide.pick_threshold
recall_at_k, route, tfidf_rank = _decide.recall_at_k, _decide.route, _decide.tfidf_rank


def test_pick_threshold_takes_the_lowest_that_meets_the_target() -> None:
    confidence = [0.99, 0.95, 0.9, 0.8, 0.7, 0.6]
    correct = [True, True, True, False, True, False]
    assert pick_threshold(confidence, correct, 1.0).threshold == 0.9
    chosen = pick_threshold(confidence, correct, 0.8)  # 4 right of the top 5
    assert (chosen.threshold, chosen.precision, chosen.coverage) == (0.7, 0.8, 5 / 6)
    assert pick_threshold([0.9, 0.8], [False, True], 0.9).threshold == float("inf")  # nothing meets it


def test_curve_keeps_ties_together() -> None:
    points = curve([0.9, 0.9, 0.5], [True, False, True])
    assert [(p.threshold, p.precision) for p in points] == [(0.9, 0.5), (0.5, 2 / 3)]
    assert at_threshold([0.9, 0.9, 0.5], [True, False, True], 0.9).coverage == 2 / 3


def test_recall_at_k_and_route() -> None:
    assert recall_at_k([["a", "b"], ["c", "a"]], ["b", "b"], 2) == 0.5
    assert recall_at_k([["a", "b"], ["c", "a"]], ["b", "b"], 1) == 0.0
    assert route(0.97, 0.2, 0.9, 0.6) == "template"
    assert route(0.5, 0.7, 0.9, 0.6) == "faq"
    assert route(0.5, 0.5, 0.9, 0.6) == "human"
    docs = ["Is the cast iron pan ok in a dishwasher?", "Do you ship to France?", "Plus membership costs"]
    assert tfidf_rank(["ship it to Paris, France", "dishwasher"], docs, ["pan", "ship", "plus"]) == [
        ["ship", "pan", "plus"], ["pan", "ship", "plus"]]


def test_the_splits_keep_uncovered_intents_out_of_training() -> None:
    rows = [{"text": f"m{i}", "label": label} for i, label in
            enumerate(["order_status"] * 10 + ["complaint"] * 8)]
    splits = data.split_intents(rows, rows[:1] + rows[-1:])
    assert {r["label"] for r in splits["intents-train"]} == {"order_status"}
    assert len(splits["intents-eval"]) == 2 and [r["label"] for r in splits["test"]] == ["order_status", "none"]
    assert [r["intent"] for r in splits["calib"] if r["label"] == "none"] == ["complaint"] * 2
    faq = data.split_faq(data.load_faq())
    train_queries = {r["query"] for r in faq["faq-train"]}
    assert not train_queries & {r["query"] for r in faq["faq-eval"]}  # held-out questions stay held out
    assert len({r["id"] for r in faq["faq-check"]}) == len(faq["faq-check"]) == len(data.load_faq())


def test_the_shipped_pipeline_and_its_tiny_variant_validate() -> None:
    from llmos.spec import load_job, parse_job

    job = load_job(APP / "pipeline.yaml")
    assert [s.name for s in job.stages] == ["intents", "faq", "check-intents", "check-faq", "promote-intents",
                                            "promote-faq"]
    tiny = parse_job(desk.pipeline_spec(tiny=True))
    assert tiny.name == "support-desk-tiny"


@pytest.mark.timeout(900)
def test_the_desk_runs_end_to_end_on_the_tiny_model(tmp_path: Path) -> None:
    # The tiny model's confidence means little, so a low target gives it a threshold to choose.
    target = 0.3
    done = subprocess.run([sys.executable, str(APP / "desk.py"), "--tiny", "--out", str(tmp_path),
                           "--target-precision", str(target)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "handled automatically" in done.stdout
    r = json.loads((tmp_path / "results.json").read_text())
    assert r["intent_accuracy"] > 1 / 6 + 0.05  # above chance among the 6 covered intents
    assert r["retrieval"]["recall_at_5"] > 5 / 20  # above chance among the 20 FAQ entries
    assert r["retrieval"]["tfidf_recall_at_5"] > 0.5  # the keyword baseline, measured beside it
    # The threshold meets the target on the calibration set, checked from the messages themselves.
    threshold = r["intent_threshold"]["threshold"]
    assert threshold is not None
    taken = [ok for conf, ok in r["calib_scores"] if conf >= threshold]
    assert taken and sum(taken) / len(taken) >= target
    assert len(r["calib_scores"]) == r["sizes"]["calib"] == 118
    shares = r["routes"]["all"]
    assert shares["n"] == 142 and abs(shares["template"] + shares["faq"] + shares["human"] - 1) < 1e-9
    assert (tmp_path / "coverage_precision.png").read_bytes()[:4] == b"\x89PNG"
