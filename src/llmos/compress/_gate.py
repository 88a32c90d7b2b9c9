"""The promotion gate: pure functions from measured numbers to a decision, with the reasons.

`compare` turns a parent and a child measurement into ratios; `decide` applies the rules of a
`GateSpec`. Neither reads a clock, a file or the registry, so tests call them with literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmos.spec import GateSpec

__all__ = ["PRIMARY_METRIC", "Comparison", "GateResult", "compare", "decide"]

# task -> (metric, higher is better, points per unit: fractions are shown and gated in points)
PRIMARY_METRIC: dict[str, tuple[str, bool, float]] = {
    "classification": ("accuracy", True, 100.0),
    "embedding": ("recall_at_1", True, 100.0),
    "causal-lm": ("perplexity", False, 1.0),
}


@dataclass(frozen=True)
class Comparison:
    metric_drop: float  # points lost against the parent (negative: the child is better)
    speedup: float  # throughput at the report batch size, child / parent
    latency_ratio: float  # p50 latency at batch 1, child / parent
    size_ratio: float  # size on disk, child / parent
    metric_parent: float = 0.0  # the metric itself (perplexity, or a fraction for accuracy), parent
    metric_child: float = 0.0  # and child: the figures a relative bound's reason shows

    @property
    def metric_change_pct(self) -> float:
        """The child's metric against the parent's, in percent (+7.5: perplexity 12.0 -> 12.9)."""
        return (self.metric_child / self.metric_parent - 1) * 100 if self.metric_parent else 0.0


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: tuple[str, ...]  # one line per rule the child failed; empty when it passed

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "passed every rule"


def compare(parent: dict[str, Any], child: dict[str, Any], task: str) -> Comparison:
    """Ratios of two measurements (dicts with metrics, throughput, latency_p50_ms, size_mb)."""
    name, higher_better, scale = PRIMARY_METRIC[task]
    before, after = parent["metrics"][name], child["metrics"][name]
    drop = (before - after) if higher_better else (after - before)
    return Comparison(metric_drop=drop * scale,
                      speedup=child["throughput"] / max(parent["throughput"], 1e-12),
                      latency_ratio=child["latency_p50_ms"] / max(parent["latency_p50_ms"], 1e-12),
                      size_ratio=child["size_mb"] / max(parent["size_mb"], 1e-12),
                      metric_parent=before, metric_child=after)


def decide(gate: GateSpec | None, c: Comparison, task: str = "classification") -> GateResult:
    """Pass when every rule the gate sets holds; no gate passes everything. Each failed rule's
    reason names the rule and the figures it judged."""
    if gate is None:
        return GateResult(True, ())
    reasons = []
    if gate.max_metric_drop is not None and c.metric_drop > gate.max_metric_drop:
        if task == "causal-lm":
            reasons.append(f"perplexity increase {c.metric_drop:.2f} ({c.metric_parent:.2f} -> {c.metric_child:.2f}) "
                           f"> max_metric_drop {gate.max_metric_drop:g}")
        else:
            reasons.append(f"metric drop {c.metric_drop:.2f} > max_metric_drop {gate.max_metric_drop:g}")
    # a rounding margin: 12.0 -> 12.6 is 5.000000000000004% in floating point, and must pass a 5% bound
    if gate.max_ppl_increase is not None and c.metric_change_pct > gate.max_ppl_increase + 1e-9:
        reasons.append(f"perplexity {c.metric_change_pct:+.1f}% ({c.metric_parent:.2f} -> {c.metric_child:.2f}) > "
                       f"max_ppl_increase {gate.max_ppl_increase:g}%")
    generation = task == "causal-lm"  # speed is generated tokens/s, latency ms per generated token
    if gate.min_speedup is not None and c.speedup < gate.min_speedup:
        what = "tokens/s" if generation else "speedup"
        reasons.append(f"{what} {c.speedup:.2f}x < min_speedup {gate.min_speedup:g}")
    if gate.max_latency_ratio is not None and c.latency_ratio > gate.max_latency_ratio:
        what = "p50 ms/token ratio" if generation else "p50 latency ratio"
        reasons.append(f"{what} {c.latency_ratio:.2f} > max_latency_ratio {gate.max_latency_ratio:g}")
    if gate.max_size_ratio is not None and c.size_ratio > gate.max_size_ratio:
        reasons.append(f"size ratio {c.size_ratio:.2f} > max_size_ratio {gate.max_size_ratio:g}")
    return GateResult(not reasons, tuple(reasons))
