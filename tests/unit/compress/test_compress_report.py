"""The report from literal measurements: ratios, gate verdicts, the compiled reference, table, plot."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from llmos.compress._report import plot_pareto, render_table, summarize
from llmos.spec import parse_job


def _m(acc: float, thr: float, p50: float, size: float, compiled: bool = False) -> dict:
    return {"metrics": {"accuracy": acc}, "throughput": thr, "latency_p50_ms": p50, "latency_p95_ms": p50 * 1.2,
            "size_mb": size, "params": 22_700_000, "peak_rss_mb": 900.0, "runtime_rss_mb": 800.0,
            "format": "torchao-int8" if compiled else "hf-safetensors", "compiled": compiled}


def test_summary_table_and_plot(tmp_path: Path) -> None:
    job = parse_job({"kind": "compress", "model": "s/1", "recipe": ["int8", "bf16"], "eval": "dev.csv",
                     "gate": {"max_metric_drop": 0.5, "min_speedup": 2.0}})
    parent = {"label": "parent", "version": "1", "measured": _m(0.90, 100.0, 10.0, 90.0),
              "measured_compiled": _m(0.90, 150.0, 6.0, 90.0, compiled=True)}
    children = [{"label": "int8", "slug": "int8", "measured": _m(0.898, 330.0, 3.0, 24.0, compiled=True)},
                {"label": "bf16", "slug": "bf16", "measured": _m(0.90, 180.0, 6.0, 45.0)}]
    report = summarize(job, "classification", parent, children, seq_len=40)  # type: ignore[arg-type]
    int8, bf16 = report["children"]
    assert int8["gate"]["passed"] and int8["vs_parent"]["speedup"] == 3.3
    assert abs(int8["vs_parent"]["metric_drop"] - 0.2) < 1e-9
    assert int8["vs_parent_compiled"]["speedup"] == 2.2 and "vs_parent_compiled" not in bf16
    assert not bf16["gate"]["passed"] and bf16["gate"]["reason"] == "speedup 1.80x < min_speedup 2"
    console = Console(width=120, record=True)
    console.print(render_table(report))
    text = console.export_text()
    assert "parent, compiled" in text and "3.30x" in text and "0.27x" in text and "fail" in text
    assert plot_pareto(report, tmp_path / "p.png").stat().st_size > 10_000
