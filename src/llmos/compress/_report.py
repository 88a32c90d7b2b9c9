"""The tradeoff report: every model measured by `_measure` in its own process, then shown as a
table, saved as JSON and drawn as a Pareto plot (metric vs. throughput, point area = size)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmos.compress._gate import PRIMARY_METRIC, compare, decide
from llmos.errors import LlmosError

if TYPE_CHECKING:
    from llmos.compress._data import CompressData
    from llmos.spec import CompressJob

__all__ = ["SERVED_TASKS", "compiles", "fixed_only", "fixed_view", "measure", "plot_pareto",
           "render_table", "same_answers", "seq_len_for", "summarize", "with_served"]

_MEASURE_TIMEOUT_S = 1800  # one model's measurement; compiling a large model on 2 cores is slow


def seq_len_for(job: CompressJob, data: CompressData) -> int:
    """`report.seq_len`, else the eval rows' 90th-percentile length rounded up to a multiple of 8."""
    if job.report.seq_len:
        return job.report.seq_len
    lengths = sorted(len(ids) for ids in data.eval.input_ids)
    p90 = lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))]
    return max(8, -(-p90 // 8) * 8)


def compiles(job: CompressJob, fmt: str, task: str = "classification") -> bool:
    """Whether the fixed-length figure compiles a model of this format before timing it."""
    if fmt == "onnx-int8":
        return False  # ONNX Runtime optimises its own graph
    if job.report.compile == "auto" and task == "causal-lm":
        return False  # the server generates eagerly; the fixed-length figure times what it runs
    return job.report.compile == "always" or (job.report.compile == "auto" and fmt.startswith("torchao-"))


def measure(folder: Path, *, job: CompressJob, data: CompressData, work_dir: Path, label: str,
            fmt: str, force_compile: bool = False, served: bool = True) -> dict[str, Any]:
    """Measure `folder`: the metric and the fixed-length figure in one fresh process (`_measure`),
    then, for a task the server answers, the served figures in another (`_served`). The served
    figures are the gate's: they become the row's `latency_p50_ms`, `latency_p95_ms` and
    `throughput`; the fixed-length ones stay under `fixed_length`. `served=False`: the
    fixed-length measurement alone, flat (the compiled parent's reference)."""
    rep = job.report
    compile_it = force_compile or compiles(job, fmt, data.task)
    request = {"folder": str(folder), "task": data.task, "pad_id": data.pad_id, "label_names": data.label_names,
               "eval": asdict(data.eval), "seq_len": seq_len_for(job, data), "batch_size": rep.batch_size,
               "latency_runs": rep.latency_runs, "throughput_batches": rep.throughput_batches,
               "warmup": rep.warmup, "num_threads": rep.num_threads or _cores(), "compile": compile_it}
    env = {**os.environ, "OMP_NUM_THREADS": str(request["num_threads"]), "TOKENIZERS_PARALLELISM": "false"}
    if served and data.eval_texts is not None:  # the served figures' warm server imports meanwhile
        from llmos import _forkserver

        served_module = "llmos.compress._served_generate" if data.task == "causal-lm" else "llmos.compress._served"
        _forkserver.start_early([sys.executable, "-m", served_module], dict(os.environ))
    fixed = _in_process_of_its_own("llmos.compress._measure", request, env, work_dir, label)
    if not served:
        return fixed
    if data.eval_texts is None:
        return fixed_only(fixed, request)
    if data.task == "causal-lm":
        gen_request = {"folder": str(folder), "texts": data.eval_texts.texts, "prompts": rep.prompts,
                       "prompt_tokens": rep.prompt_tokens, "max_new_tokens": rep.max_new_tokens,
                       "runtime": rep.runtime.model_dump(), "batching": rep.batching.model_dump(),
                       "clients": rep.clients, "warmup": rep.warmup}
        figures = _in_process_of_its_own("llmos.compress._served_generate", gen_request, dict(os.environ),
                                         work_dir, label + "-served")
        return with_served(fixed, figures, request)
    split = data.eval_texts
    served_request = {"folder": str(folder), "texts": split.texts,
                      "pairs": split.pairs if data.task == "classification" else None,
                      "runtime": rep.runtime.model_dump(), "batching": rep.batching.model_dump(),
                      "batch_size": rep.batch_size, "clients": rep.clients, "latency_runs": rep.latency_runs,
                      "requests": rep.throughput_batches, "warmup": rep.warmup}
    # The environment `llmos serve` would get from here: the server's own thread settings apply.
    figures = _in_process_of_its_own("llmos.compress._served", served_request, dict(os.environ), work_dir,
                                     label + "-served")
    return with_served(fixed, figures, request)


# Timed as served: encoders through `llmos.serve.answer`, causal LMs generating through the server's app.
SERVED_TASKS = ("classification", "embedding", "causal-lm")
_SPEED = ("latency_p50_ms", "latency_p95_ms", "throughput")


def with_served(fixed: dict[str, Any], served: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """One model's row: the served figures in front (the gate's inputs), the fixed-length ones beside."""
    row = fixed_only(fixed, request)
    row.update({k: served[k] for k in _SPEED}, served=served, speed_from="served")
    return row


def fixed_only(fixed: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A row whose only speed figures are the fixed-length ones (generation is not served here)."""
    row = {k: v for k, v in fixed.items() if k not in ("threads", "compiled")}
    row["fixed_length"] = {**{k: fixed[k] for k in _SPEED}, "seq_len": request["seq_len"],
                           "batch_size": request["batch_size"], "threads": fixed["threads"],
                           "compiled": fixed["compiled"]}
    row["speed_from"] = "fixed-length"
    return row


def fixed_view(measured: dict[str, Any]) -> dict[str, Any]:
    """A row as the fixed-length figure saw it (for comparing with the compiled parent)."""
    return {**measured, **measured["fixed_length"]} if "fixed_length" in measured else measured


# Each measuring program runs in a process of its own, forked from a warm server
# (llmos._forkserver) that has imported torch, transformers and llmos's model code once: the same
# fresh process for the program, without ~3 s of imports for each model. One server per role: the
# fixed-length figure runs as a batch process, the served one with the server's OpenMP settings.
# The servers outlive the compression (10 minutes idle): the next one in this environment, and the
# daemon's jobs and replicas, start from them too.


def _in_process_of_its_own(module: str, request: dict[str, Any], env: dict[str, str], work_dir: Path,
                           label: str) -> dict[str, Any]:
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    req_file, out_file = work_dir / f"measure-{slug}.json", work_dir / f"measured-{slug}.json"
    log_file = work_dir / f"measure-{slug}.log"
    req_file.write_text(json.dumps(request))
    out_file.unlink(missing_ok=True)
    log_file.unlink(missing_ok=True)
    try:
        code = _run_program(module, [str(req_file), str(out_file)], env, work_dir, log_file)
    except subprocess.TimeoutExpired:
        raise LlmosError(f"measuring {label} took over {_MEASURE_TIMEOUT_S} s and was stopped.",
                         hint="Lower report.latency_runs / report.throughput_batches, or set report.compile: "
                              "never (fixed length) / report.runtime.compile: off (served).") from None
    if code != 0 or not out_file.is_file():
        output = log_file.read_text(errors="replace") if log_file.is_file() else ""
        tail = "\n".join(output.strip().splitlines()[-6:])
        raise LlmosError(f"measuring {label} failed (exit {code}):\n{tail}",
                         hint=f"The whole output is in {log_file}; the request in {req_file}.")
    return json.loads(out_file.read_text())


def _run_program(module: str, args: list[str], env: dict[str, str], work_dir: Path, log_file: Path) -> int:
    """`python -m module *args` in a process of its own, its output in `log_file`: forked from the
    warm server for its role (started, and waited for, on first use), else started fresh. Its exit
    status; subprocess.TimeoutExpired once it has run `_MEASURE_TIMEOUT_S` (it is killed)."""
    from llmos import _forkserver

    argv = [sys.executable, "-m", module, *args]
    with open(os.devnull, "rb") as null, log_file.open("ab") as log:
        proc: subprocess.Popen | _forkserver.Attached | None = _forkserver.attach(
            argv, env, cwd=Path.cwd(), stdio=(null.fileno(), log.fileno(), log.fileno()), start="wait")
        if proc is None:
            proc = subprocess.Popen(argv, stdin=null, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            return proc.wait(timeout=_MEASURE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise


def summarize(job: CompressJob, task: str, parent: dict[str, Any], children: list[dict[str, Any]],
              seq_len: int) -> dict[str, Any]:
    """The report as JSON: parent, children with ratios and gate decisions, and the machine."""
    metric, higher_better, scale = PRIMARY_METRIC[task]
    rows = []
    for child in children:
        comparison = compare(parent["measured"], child["measured"], task)
        result = decide(job.gate, comparison, task)
        extra = {}
        if child["measured"].get("speed_from") == "served":
            # shown beside the served figures, never the gate's input
            extra["vs_parent_fixed_length"] = asdict(compare(fixed_view(parent["measured"]),
                                                             fixed_view(child["measured"]), task))
        if "measured_compiled" in parent and child["measured"]["fixed_length"]["compiled"]:
            # the same compiler on both sides: what quantizing gains beyond what compiling gains
            extra["vs_parent_compiled"] = asdict(compare(parent["measured_compiled"], fixed_view(child["measured"]),
                                                         task))
        if task == "causal-lm":
            extra["same_answers"] = same_answers(parent["measured"], child["measured"])
        rows.append({**child, "vs_parent": {**asdict(comparison), "metric_change_pct": comparison.metric_change_pct},
                     **extra,
                     "gate": {"passed": result.passed, "reasons": list(result.reasons), "reason": result.reason,
                              "speed_from": child["measured"].get("speed_from", "fixed-length")}})
    return {"task": task, "metric": metric, "higher_is_better": higher_better, "metric_points_per_unit": scale,
            "parent": parent, "children": rows, "gate": job.gate.model_dump() if job.gate else None,
            "settings": {**job.report.model_dump(), "seq_len": seq_len}, "machine": _machine()}


def same_answers(parent: dict[str, Any], child: dict[str, Any]) -> float | None:
    """The share of the served greedy answers a child gives word for word as the parent does."""
    mine, theirs = child.get("served", {}).get("answers"), parent.get("served", {}).get("answers")
    if not mine or not theirs or len(mine) != len(theirs):
        return None
    return sum(a == b for a, b in zip(mine, theirs, strict=True)) / len(mine)


def render_table(report: dict[str, Any]) -> Any:
    """A Rich table: one row for the parent, one per child, with its ratio to the parent. The
    gate's figures are the served ones; the fixed-length throughput is shown beside them."""
    from rich.table import Table

    metric, scale = report["metric"], report["metric_points_per_unit"]
    table = Table(title=speed_caption(report), title_justify="left", pad_edge=False)
    generation = report["task"] == "causal-lm"
    speed = ("ms/tok p50/p95", "tok/s") if generation else ("p50/p95 ms", "ex/s")
    for col in ("model", metric, *speed, "fixed ex/s", "MB", "params", "mem MB", "served as", "gate"):
        table.add_column(col, justify="left" if col in ("model", "served as", "gate") else "right")
    parent = report["parent"]
    table.add_row(*_cells(parent, None, metric, scale), "parent")
    if "measured_compiled" in parent:
        compiled = {"label": "parent, compiled", "measured": parent["measured_compiled"]}
        vs = compare(fixed_view(parent["measured"]), parent["measured_compiled"], report["task"])
        table.add_row(*_cells(compiled, asdict(vs), metric, scale), "reference")
    for child in report["children"]:
        table.add_row(*_cells(child, child["vs_parent"], metric, scale),
                      "[green]pass[/]" if child["gate"]["passed"] else "[red]fail[/]")
    return table


def speed_caption(report: dict[str, Any]) -> str:
    """Which load and settings the speed columns used (the runtime of each model is in its row)."""
    s, cores = report["settings"], report["machine"]["cores"]
    fixed = f"fixed ex/s: batch {s['batch_size']} x {s['seq_len']} tokens, {s['num_threads'] or cores} threads"
    if report["task"] == "causal-lm" and report["parent"]["measured"].get("speed_from") == "served":
        load = report["parent"]["measured"]["served"]["load"]
        return (f"perplexity on the eval text (lower is better); served as llmos serve runs each model (its "
                f"runtime, threads, continuous batching with a KV cache, over HTTP): {load['prompts']} greedy "
                f"/v1/completions requests of {load['prompt_tokens']}-token prompts for up to "
                f"{load['max_new_tokens']} tokens, {load['clients']} in flight; tok/s: generated tokens per second; "
                f"ms/tok: a request's time over its tokens; {fixed}; {cores} cores; the gate judges the served "
                "figures")
    if report["parent"]["measured"].get("speed_from") != "served":
        return (f"{report['metric']} on the eval data; speed at fixed length only (generation is not timed as "
                f"served); p50 at batch 1 and ex/s at batch {s['batch_size']} x {s['seq_len']} tokens; {cores} cores")
    b = s["batching"]
    return (f"{report['metric']} on the eval data; served as llmos serve runs each model (its runtime, packing, "
            f"threads and batching: max_batch_size {b['max_batch_size']}, max_wait_ms {b['max_wait_ms']:g}, "
            f"linger_ms {b['linger_ms']:g}): p50/p95 of one-text requests, ex/s of requests of {s['batch_size']} "
            f"eval texts, {s['clients']} in flight; {fixed}; {cores} cores; the gate judges the served figures")


def served_as(measured: dict[str, Any]) -> str:
    """`torch fp32, 2 threads, packing on, 12% padding, 32 per pass`: what a served figure ran on."""
    served = measured.get("served")
    if served is None:
        return "(not served: fixed length)"
    rt = served["runtime"]
    if "answers" in served:  # generation
        return f"{rt['name']} {rt['precision']}, {rt['threads']} thr, eager, KV cache"
    packing = "packed" if rt["packing"] == "on" else "bucketed" if "length buckets" in rt["packing"] else "padded"
    compiled = ", compiled" if rt["compiled"] == "on" else ""
    return (f"{rt['name']} {rt['precision']}{compiled}, {rt['threads']} thr, {packing}: "
            f"{served['padding']:.0%} padding, {served['inputs_per_pass']:.0f}/pass")


def _cells(row: dict[str, Any], vs: dict[str, float] | None, metric: str, scale: float) -> list[str]:
    """Values, and under a child's values its change against the parent (Δ points, × ratios)."""
    m = row["measured"]
    fixed = m.get("fixed_length", {"throughput": m["throughput"]})
    cells = [_escape(row["label"]) + (f" v{row['version']}" if row.get("version") else ""),
             f"{m['metrics'][metric] * scale:.2f}", f"{m['latency_p50_ms']:.1f}/{m['latency_p95_ms']:.1f}",
             f"{m['throughput']:.1f}", f"{fixed['throughput']:.1f}", f"{m['size_mb']:.1f}",
             f"{m['params'] / 1e6:.2f}M", f"{max(0.0, m['peak_rss_mb'] - m['runtime_rss_mb']):.0f}",
             _escape(served_as(m) if "fixed_length" in m else "(fixed length, compiled)")]
    if row.get("same_answers") is not None:
        cells[8] += f"; same answers as parent: {row['same_answers']:.0%}"
    if vs is not None and metric == "perplexity":  # lower is better: show the increase, and in percent
        pct = vs.get("metric_change_pct")
        cells[1] += f"\n[dim]{vs['metric_drop']:+.2f}" + (f" ({pct:+.1f}%)" if pct is not None else "") + "[/]"
    elif vs is not None:
        cells[1] += f"\n[dim]{-vs['metric_drop']:+.2f}[/]"
    if vs is not None:
        cells[2] += f"\n[dim]{vs['latency_ratio']:.2f}x[/]"
        cells[3] += f"\n[dim]{vs['speedup']:.2f}x[/]"
        cells[5] += f"\n[dim]{vs['size_ratio']:.2f}x[/]"
    if "vs_parent_fixed_length" in row:
        cells[4] += f"\n[dim]{row['vs_parent_fixed_length']['speedup']:.2f}x[/]"
    return cells


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def plot_pareto(report: dict[str, Any], path: Path) -> Path:
    """Metric vs. throughput, one point per model (area ∝ size on disk), the Pareto front joined."""
    from llmos._lazy import require

    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot")
    metric, scale, higher = report["metric"], report["metric_points_per_unit"], report["higher_is_better"]
    rows = [report["parent"], *report["children"]]
    xs = [r["measured"]["throughput"] for r in rows]  # the served figure, where there is one
    ys = [r["measured"]["metrics"][metric] * scale for r in rows]
    sizes = [r["measured"]["size_mb"] for r in rows]
    biggest = max(sizes) or 1.0
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = ["black"] + [("tab:green" if r["gate"]["passed"] else "tab:red") for r in report["children"]]
    ax.scatter(xs, ys, s=[60 + 900 * s / biggest for s in sizes], c=colors, alpha=0.55, edgecolors="k")
    for x, y, r in zip(xs, ys, rows, strict=True):
        ax.annotate(r["label"], (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    front = _pareto_front(list(zip(xs, ys, strict=True)), higher)
    ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="gray", linewidth=1, label="Pareto front")
    served = report["parent"]["measured"].get("speed_from") == "served"
    if report["task"] == "causal-lm" and served:
        ax.set_xlabel("served generation, tokens/s (greedy /v1/completions requests)")
    else:
        ax.set_xlabel(f"{'served ' if served else ''}throughput, examples/s "
                      f"({'requests' if served else 'batches'} of {report['settings']['batch_size']})")
    ax.set_ylabel(metric + (" (points)" if scale != 1 else ""))
    ax.set_title("compression tradeoff (point area = size on disk; green passed the gate)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[tuple[float, float]]:
    """Points no other point beats on both throughput and metric, by throughput."""
    sign = 1 if higher_is_better else -1
    front = [p for p in points
             if not any(q[0] >= p[0] and sign * q[1] >= sign * p[1] and q != p for q in points)]
    return sorted(front)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _machine() -> dict[str, Any]:
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "torchao", "onnxruntime", "transformers"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": _cores(), "python": platform.python_version(), **versions}
