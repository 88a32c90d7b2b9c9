"""The report from literal measurements: ratios, gate verdicts on the served figures, the
fixed-length and compiled references beside them, table, plot."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from llmos.compress._report import plot_pareto, render_table, summarize, with_served
from llmos.spec import parse_job

_REQUEST = {"seq_len": 40, "batch_size": 32}


def _fixed(acc: float, thr: float, p50: float, size: float, compiled: bool = False) -> dict:
    """What the fixed-length measuring process returns."""
    return {"metrics": {"accuracy": acc}, "throughput": thr, "latency_p50_ms": p50, "latency_p95_ms": p50 * 1.2,
            "size_mb": size, "params": 22_700_000, "peak_rss_mb": 900.0, "runtime_rss_mb": 800.0,
            "format": "torchao-int8" if compiled else "hf-safetensors", "compiled": compiled, "threads": 2}


def _served(thr: float, p50: float, name: str = "torch", packing: str = "on", padding: float = 0.05) -> dict:
    """What the served measuring process returns."""
    return {"throughput": thr, "latency_p50_ms": p50, "latency_p95_ms": p50 * 1.3, "request_p50_ms": 80.0,
            "passes": 28, "inputs_per_pass": 32.0, "padding": padding,
            "runtime": {"name": name, "precision": "fp32", "device": "cpu", "threads": 2, "packing": packing,
                        "compiled": "off (auto: eager kernels are fast here)"},
            "batching": {"max_batch_size": 32, "max_batch_tokens": 8192, "max_wait_ms": 5.0, "linger_ms": 20.0},
            "load": {"batch_size": 32, "clients": 1, "texts": 872, "texts_over_limit": 0}, "load_s": 1.0}


def _row(fixed: dict, served: dict) -> dict:
    return with_served(fixed, served, _REQUEST)


def test_summary_table_and_plot(tmp_path: Path) -> None:
    job = parse_job({"kind": "compress", "model": "s/1", "recipe": ["int8", "bf16"], "eval": "dev.csv",
                     "gate": {"max_metric_drop": 0.5, "min_speedup": 2.0}})
    parent = {"label": "parent", "version": "1",
              "measured": _row(_fixed(0.90, 100.0, 10.0, 90.0), _served(400.0, 12.0)),
              "measured_compiled": _fixed(0.90, 150.0, 6.0, 90.0, compiled=True)}
    children = [{"label": "int8", "slug": "int8",
                 "measured": _row(_fixed(0.898, 330.0, 3.0, 24.0, compiled=True), _served(1320.0, 6.0))},
                {"label": "bf16", "slug": "bf16",
                 "measured": _row(_fixed(0.90, 180.0, 6.0, 45.0), _served(720.0, 9.0))}]
    report = summarize(job, "classification", parent, children, seq_len=40)  # type: ignore[arg-type]
    int8, bf16 = report["children"]
    assert int8["gate"]["passed"] and int8["vs_parent"]["speedup"] == 3.3 and int8["gate"]["speed_from"] == "served"
    assert abs(int8["vs_parent"]["metric_drop"] - 0.2) < 1e-9
    assert int8["vs_parent_fixed_length"]["speedup"] == 3.3 and bf16["vs_parent_fixed_length"]["speedup"] == 1.8
    assert int8["vs_parent_compiled"]["speedup"] == 2.2 and "vs_parent_compiled" not in bf16
    assert not bf16["gate"]["passed"] and bf16["gate"]["reason"] == "speedup 1.80x < min_speedup 2"
    console = Console(width=200, record=True)
    console.print(render_table(report))
    text = console.export_text()
    assert "parent, compiled" in text and "3.30x" in text and "0.50x" in text and "fail" in text
    assert "torch fp32, 2 thr, packed: 5% padding, 32/pass" in text and "gate judges the served figures" in text
    assert plot_pareto(report, tmp_path / "p.png").stat().st_size > 10_000


def test_the_gate_judges_served_figures_not_fixed_length_ones() -> None:
    """A child three times faster at fixed length, but padded where the parent packs: served it is
    slower, and the gate says so."""
    job = parse_job({"kind": "compress", "model": "s/1", "recipe": ["onnx-int8"], "eval": "dev.csv",
                     "gate": {"min_speedup": 1.5}})
    parent = {"label": "parent", "measured": _row(_fixed(0.867, 200.0, 9.2, 90.0), _served(399.0, 12.0))}
    child = {"label": "onnx-int8", "slug": "onnx-int8",
             "measured": _row(_fixed(0.865, 540.0, 2.8, 23.0),
                              _served(287.0, 8.0, name="onnx", packing="off (ONNX Runtime runs padded batches)",
                                      padding=0.48))}
    report = summarize(job, "classification", parent, [child], seq_len=40)  # type: ignore[arg-type]
    row = report["children"][0]
    assert row["vs_parent_fixed_length"]["speedup"] == 2.7
    assert not row["gate"]["passed"] and row["gate"]["reasons"] == ["speedup 0.72x < min_speedup 1.5"]
    console = Console(width=200, record=True)
    console.print(render_table(report))
    assert "padded: 48% padding" in console.export_text()
