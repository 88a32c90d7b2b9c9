"""Causal LMs in the gate and the report: the perplexity bound (relative, in percent) from literals,
its spec errors naming the field, and the report's generation rows, table and plot."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from llmos.compress import compare, decide
from llmos.compress._report import plot_pareto, render_table, summarize, with_served
from llmos.errors import SpecError
from llmos.spec import GateSpec, parse_job


def _m(ppl: float, tok_s: float = 40.0, ms_tok: float = 25.0, size: float = 540.0) -> dict:
    return {"metrics": {"perplexity": ppl}, "throughput": tok_s, "latency_p50_ms": ms_tok, "size_mb": size}


def test_the_ppl_bound_is_relative_and_its_reason_has_the_figures() -> None:
    gate = GateSpec(max_ppl_increase=5)
    ok, bad = compare(_m(12.0), _m(12.6), "causal-lm"), compare(_m(12.0), _m(12.9), "causal-lm")
    assert ok.metric_change_pct == pytest.approx(5.0) and decide(gate, ok, "causal-lm").passed  # the bound passes
    result = decide(gate, bad, "causal-lm")
    assert not result.passed
    assert result.reasons == ("perplexity +7.5% (12.00 -> 12.90) > max_ppl_increase 5%",)


def test_absolute_and_speed_bounds_speak_of_perplexity_and_tokens() -> None:
    gate = GateSpec(max_metric_drop=0.5, min_speedup=1.2, max_latency_ratio=0.9)
    c = compare(_m(12.0), _m(13.0, tok_s=30.0, ms_tok=30.0), "causal-lm")
    assert decide(gate, c, "causal-lm").reasons == (
        "perplexity increase 1.00 (12.00 -> 13.00) > max_metric_drop 0.5", "tokens/s 0.75x < min_speedup 1.2",
        "p50 ms/token ratio 1.20 > max_latency_ratio 0.9")
    assert decide(GateSpec(max_ppl_increase=0), compare(_m(12.0), _m(11.5), "causal-lm"), "causal-lm").passed


@pytest.mark.parametrize("value", [5, 5.0, "5%", " 5 % ", "5"])
def test_the_ppl_bound_is_written_as_a_number_or_a_percentage(value: object) -> None:
    assert GateSpec(max_ppl_increase=value).max_ppl_increase == 5.0


@pytest.mark.parametrize("value, message", [("five", "expected a percentage such as 5 or '5%'"),
                                            (-1, "greater than or equal to 0"), ("-2%", "greater than or equal")])
def test_a_bad_ppl_bound_names_the_field(value: object, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_job({"kind": "compress", "model": "lm/1", "recipe": ["bf16"], "eval": "e.jsonl"},
                  [f"gate.max_ppl_increase={value}"])
    fields = dict(err.value.problems or [])
    assert "gate.max_ppl_increase" in fields and message in fields["gate.max_ppl_increase"]


def test_a_ppl_bound_on_a_classifier_is_refused_with_the_other_problems(tmp_path: Path) -> None:
    from llmos.compress import Parent
    from llmos.compress._pipeline import _plan

    parent = Parent(name="reviews", version="1", folder=tmp_path, config={},
                    info={"task": "classification", "format": "hf-safetensors", "label_names": ["a", "b"]})
    job = parse_job({"kind": "compress", "model": "reviews/1", "recipe": ["bf16"], "eval": str(tmp_path / "no.csv"),
                     "gate": {"max_ppl_increase": "5%"}})
    with pytest.raises(SpecError) as err:
        _plan(job, parent)  # type: ignore[arg-type]
    fields = dict(err.value.problems or [])
    assert fields.keys() == {"eval", "gate.max_ppl_increase"}  # every problem at once, before any work
    assert "reviews/1 is a classification model" in fields["gate.max_ppl_increase"]
    assert "gate.max_metric_drop" in fields["gate.max_ppl_increase"]


def _fixed(ppl: float, size: float) -> dict:
    return {"metrics": {"perplexity": ppl, "loss": 2.5}, "throughput": 30.0, "latency_p50_ms": 40.0,
            "latency_p95_ms": 50.0, "size_mb": size, "params": 134_515_008, "peak_rss_mb": 900.0,
            "runtime_rss_mb": 400.0, "format": "hf-safetensors", "compiled": False, "threads": 2}


def _served(tok_s: float, answers: list[str]) -> dict:
    return {"throughput": tok_s, "latency_p50_ms": 1000 / tok_s, "latency_p95_ms": 1100 / tok_s,
            "request_p50_ms": 800.0, "generated_tokens": 64, "requests": 2, "elapsed_s": 64 / tok_s,
            "answers": answers, "load_s": 1.0,
            "runtime": {"name": "torch", "precision": "fp32", "device": "cpu", "threads": 2,
                        "packing": "off (runtime.packing: off)", "compiled": "off (generation runs eagerly)"},
            "batching": {"max_batch_size": 32, "max_batch_tokens": 8192, "max_wait_ms": 5.0, "linger_ms": 20.0},
            "load": {"prompts": 2, "prompt_tokens": 32, "max_new_tokens": 32, "clients": 1,
                     "decoding": "greedy (temperature 0)", "route": "/v1/completions"}}


def test_generation_report_table_and_plot(tmp_path: Path) -> None:
    job = parse_job({"kind": "compress", "model": "lm/1", "recipe": ["bf16", "int4-weight"], "eval": "e.jsonl",
                     "gate": {"max_ppl_increase": "5%"}})
    request = {"seq_len": 64, "batch_size": 32}
    parent = {"label": "parent", "version": "1", "measured": with_served(_fixed(12.0, 540.0),
                                                                         _served(40.0, ["a b", "c d"]), request)}
    children = [{"label": "bf16", "slug": "bf16", "recipe": "bf16",
                 "measured": with_served(_fixed(12.1, 270.0), _served(44.0, ["a b", "c d"]), request)},
                {"label": "int4-weight", "slug": "int4-weight", "recipe": "int4-weight",
                 "measured": with_served(_fixed(13.2, 160.0), _served(20.0, ["a b", "x"]), request)}]
    report = summarize(job, "causal-lm", parent, children, 64)  # type: ignore[arg-type]
    bf16, int4 = report["children"]
    assert bf16["gate"]["passed"] and bf16["same_answers"] == 1.0 and int4["same_answers"] == 0.5
    assert not int4["gate"]["passed"] and int4["gate"]["reason"].startswith("perplexity +10.0% (12.00 -> 13.20)")
    assert int4["vs_parent"]["metric_change_pct"] == pytest.approx(10.0)
    console = Console(width=250, record=True)
    console.print(render_table(report))
    text = console.export_text()
    assert "tok/s" in text and "ms/tok p50/p95" in text and "+1.20 (+10.0%)" in text
    assert "/v1/completions" in text and "same answers as parent: 50%" in text and "eager, KV cache" in text
    assert plot_pareto(report, tmp_path / "p.png").stat().st_size > 10_000
