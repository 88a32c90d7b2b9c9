"""The gate as pure functions: literals in, a decision and its reasons out."""

from __future__ import annotations

import pytest

from llmos.compress import Comparison, compare, decide
from llmos.compress._report import _pareto_front
from llmos.spec import GateSpec


def _m(accuracy: float, throughput: float, p50: float, size: float, **metrics: float) -> dict:
    return {"metrics": {"accuracy": accuracy, **metrics}, "throughput": throughput, "latency_p50_ms": p50,
            "size_mb": size}


def test_compare_gives_points_and_ratios() -> None:
    c = compare(_m(0.912, 100.0, 10.0, 90.0), _m(0.907, 230.0, 4.0, 23.0), "classification")
    assert c.metric_drop == pytest.approx(0.5)
    assert (c.speedup, c.latency_ratio, c.size_ratio) == pytest.approx((2.3, 0.4, 23 / 90))


def test_perplexity_drop_is_its_increase() -> None:
    parent = {"metrics": {"perplexity": 20.0}, "throughput": 1.0, "latency_p50_ms": 1.0, "size_mb": 1.0}
    child = {**parent, "metrics": {"perplexity": 21.5}}
    assert compare(parent, child, "causal-lm").metric_drop == pytest.approx(1.5)


def test_a_child_that_meets_every_rule_passes() -> None:
    gate = GateSpec(max_metric_drop=0.5, min_speedup=1.5, max_size_ratio=0.5)
    result = decide(gate, Comparison(metric_drop=0.3, speedup=2.1, latency_ratio=0.5, size_ratio=0.26))
    assert result.passed and result.reasons == () and result.reason == "passed every rule"


def test_a_failing_child_gets_every_reason() -> None:
    gate = GateSpec(max_metric_drop=0.5, min_speedup=1.5, max_latency_ratio=0.6, max_size_ratio=0.5)
    result = decide(gate, Comparison(metric_drop=1.2, speedup=1.1, latency_ratio=0.9, size_ratio=0.99))
    assert not result.passed
    assert result.reasons == ("metric drop 1.20 > max_metric_drop 0.5", "speedup 1.10x < min_speedup 1.5",
                              "p50 latency ratio 0.90 > max_latency_ratio 0.6", "size ratio 0.99 > max_size_ratio 0.5")


def test_rules_not_set_are_not_checked_and_no_gate_passes_everything() -> None:
    bad = Comparison(metric_drop=30.0, speedup=0.1, latency_ratio=9.0, size_ratio=3.0)
    assert decide(None, bad).passed
    assert not decide(GateSpec(min_speedup=1.5), bad).passed
    assert decide(GateSpec(max_size_ratio=5.0), bad).passed


def test_boundaries_pass() -> None:
    gate = GateSpec(max_metric_drop=0.5, min_speedup=2.0)
    assert decide(gate, Comparison(metric_drop=0.5, speedup=2.0, latency_ratio=1.0, size_ratio=1.0)).passed


def test_pareto_front() -> None:
    points = [(100.0, 91.0), (250.0, 90.6), (200.0, 89.0), (300.0, 85.0), (90.0, 92.0)]
    assert _pareto_front(points, higher_is_better=True) == [(90.0, 92.0), (100.0, 91.0), (250.0, 90.6),
                                                            (300.0, 85.0)]
    assert _pareto_front([(1.0, 10.0), (2.0, 12.0)], higher_is_better=False) == [(1.0, 10.0), (2.0, 12.0)]
