"""`compress`: the compression job, top to bottom.

set-up (fetch and verify the parent, check every recipe and the data: all errors before any
work) → run each recipe into its own child folder → measure the parent and every child (the
metric and a fixed-length figure in one process, the served figures, which the gate judges, in
another) → report (table, JSON, Pareto plot) → register every child with its lineage →
the gate moves the alias to the best passing child and tags the others with the reason.

The parent is only read: its registry version and files are never touched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos._threads import apply_plan, plan_threads
from llmos.compress._data import check_sources, load_data
from llmos.compress._recipe import Parent, RecipeContext, slug
from llmos.compress._recipes import get_recipe
from llmos.compress._report import compiles, measure, plot_pareto, seq_len_for, summarize
from llmos.errors import LlmosError, ModelError, SpecError
from llmos.spec import CompressJob
from llmos.tracking._store import quiet_downloads

__all__ = ["CompressResult", "compress", "resolve_parent"]

_REQUIRED_INFO = ("task", "label_names", "max_length", "format", "parent")


@dataclass
class CompressResult:
    run_dir: Path
    run_id: str
    report: dict[str, Any]  # what report.json holds, plus `registered` per child
    report_file: Path
    plot_file: Path
    registered_name: str
    alias_version: str | None = None  # the version `alias` now names, if any child passed
    notes: list[str] = field(default_factory=list)


def compress(job: CompressJob, note: Callable[[str], None] = print,
             hold: Callable[[], AbstractContextManager[Any]] = nullcontext) -> CompressResult:
    """`hold()` wraps the last stage (register, move the alias, write the report): the control plane
    defers a SIGTERM there, so that a stopped job has registered all its children or none."""
    # ---- set-up: everything that can be wrong is found here, before any work -----------------
    apply_plan(plan_threads(job.report.num_threads, field="report.num_threads"))  # llmos._threads' rule
    parent = resolve_parent(job)
    plans = _plan(job, parent)
    from transformers import AutoTokenizer

    data = load_data(job, parent, AutoTokenizer.from_pretrained(str(parent.folder)))
    run_dir = _run_dir(job, parent)
    note(f"parent {parent.ref} ({parent.task}, {parent.format}); {len(plans)} recipe(s); "
         f"{len(data.eval)} eval rows, {len(data.calib)} calibration rows; work folder {run_dir}")
    tracker = _start_tracking(job, parent, data, run_dir)
    try:
        result = _run(job, parent, plans, data, run_dir, tracker, note, hold)
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")
    return result


def _run(job: CompressJob, parent: Parent, plans: list[tuple[Any, Any, Any]], data: Any, run_dir: Path,
         tracker: Any, note: Callable[[str], None], hold: Callable[[], AbstractContextManager[Any]]
         ) -> CompressResult:
    # ---- recipes: one child folder each -----------------------------------------------------------
    children = []
    for spec, recipe, params in plans:
        name = slug(spec.label)
        out_dir, work_dir = run_dir / "children" / name, run_dir / "work" / name
        out_dir.mkdir(parents=True)
        work_dir.mkdir(parents=True)
        ctx = RecipeContext(parent=parent, job=job, label=spec.label, out_dir=out_dir, work_dir=work_dir,
                            data=data, tracker=tracker, note=note)
        note(f"[{spec.label}] running")
        started = time.perf_counter()
        folder = Path(recipe.run(ctx, params))
        info = _check_child(folder, spec.label)
        children.append({"label": spec.label, "slug": name, "recipe": spec.name,
                         "params": params.model_dump(mode="json"), "folder": str(folder), "format": info["format"],
                         "recipe_s": round(time.perf_counter() - started, 2)})

    # ---- measure: the parent and every child, same machine, same inputs, one process each ----------
    measure_dir = run_dir / "measure"
    measure_dir.mkdir(exist_ok=True)
    rep = job.report
    if parent.task == "causal-lm":
        how = (f"served as llmos serve runs each: {rep.prompts} greedy /v1/completions requests of "
               f"{rep.max_new_tokens} tokens, {rep.clients} in flight")
    else:
        how = (f"served as llmos serve runs each: one-text requests, then requests of {rep.batch_size} eval texts, "
               f"{rep.clients} in flight")
    note(f"measuring {len(children) + 1} models (metric on {len(data.eval)} rows; speed {how}; fixed-length "
         f"figure at batch {rep.batch_size} x {seq_len_for(job, data)} tokens)")
    parent_row = {"label": "parent", "ref": parent.ref, "version": parent.version, "format": parent.format,
                  "measured": measure(parent.folder, job=job, data=data, work_dir=measure_dir, label="parent",
                                      fmt=parent.format)}
    if job.report.compile == "auto" and any(compiles(job, c["format"], parent.task) for c in children):
        # Compiled children are also compared with the compiled parent: compiling alone speeds up
        # fp32 too, and the report must not credit quantization with that.
        note("[parent] measuring compiled, as the reference for compiled children")
        parent_row["measured_compiled"] = measure(parent.folder, job=job, data=data, work_dir=measure_dir,
                                                  label="parent-compiled", fmt=parent.format, force_compile=True,
                                                  served=False)
    for child in children:
        note(f"[{child['label']}] measuring")
        child["measured"] = measure(Path(child["folder"]), job=job, data=data, work_dir=measure_dir,
                                    label=child["label"], fmt=child["format"])

    # ---- report: JSON, plot, MLflow ---------------------------------------------------------------
    report = summarize(job, parent.task, parent_row, children, seq_len_for(job, data))
    report["data"] = {"sources": data.sources, "data_hash": data.data_hash}
    report_file, plot_file = run_dir / "report.json", run_dir / "pareto.png"
    plot_pareto(report, plot_file)
    _log_report(tracker, report)

    # ---- register every child; the gate decides who gets the alias --------------------------------
    name = job.name or parent.name
    with hold():
        note(f"registering {len(report['children'])} child(ren) as {name}")
        for child in report["children"]:
            child["registered"] = _register(job, tracker, parent, data, child, name)
        alias_version = _move_alias(job, name, report["children"])
        report["registered_name"], report["alias"] = name, {"name": job.alias, "version": alias_version}
        report_file.write_text(json.dumps(report, indent=2))
        tracker.log_artifact(report_file, "report")
        tracker.log_artifact(plot_file, "report")
    return CompressResult(run_dir=run_dir, run_id=tracker.run_id, report=report, report_file=report_file,
                          plot_file=plot_file, registered_name=name, alias_version=alias_version)


# ---- set-up helpers -------------------------------------------------------------------------------


def resolve_parent(job: CompressJob) -> Parent:
    """The parent version, pinned to a number (an alias may move meanwhile), fetched and verified."""
    from llmos.registry import ModelRef, fetch, parse_ref, show

    ref = parse_ref(job.model)
    version = show(ref, tracking_uri=job.tracking.uri).versions[-1].version
    with quiet_downloads():  # between our own progress lines, MLflow's bar is noise
        folder = fetch(ModelRef(ref.name, version=version), tracking_uri=job.tracking.uri)
    info_file, config_file = folder / "llmos_model.json", folder / "config.json"
    if not info_file.is_file():
        raise ModelError(f"{ref.name}/{version} has no llmos_model.json; it was not registered by llmos.",
                         hint="Compress models registered by llmos train or llmos compress.")
    info = json.loads(info_file.read_text())
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    return Parent(name=ref.name, version=version, folder=folder, info=info, config=config)


def _plan(job: CompressJob, parent: Parent) -> list[tuple[Any, Any, Any]]:
    """(spec, recipe, typed params) per recipe; every recipe's and the data's problems, at once."""
    plans, problems = [], []
    for i, spec in enumerate(job.recipe):
        recipe, params = get_recipe(spec.name), spec.typed_params()
        try:
            if parent.task not in recipe.tasks:
                raise ModelError(f"'{spec.name}' cannot handle a {parent.task} model (it supports "
                                 f"{', '.join(recipe.tasks)})")
            recipe.check(parent, params, job)
        except SpecError as exc:
            problems.extend(exc.problems or [(f"recipe.{i}", exc.message)])
            continue
        except LlmosError as exc:
            problems.append((f"recipe.{i} ({spec.label})", exc.message))
            continue
        plans.append((spec, recipe, params))
    problems.extend(check_sources(job))
    problems.extend(_gate_problems(job, parent))
    if problems:
        raise SpecError(f"cannot compress {parent.ref} as asked (nothing was done):", problems=problems,
                        hint="Fix the items above; llmos compress --list shows every recipe and its parameters.")
    return plans


def _gate_problems(job: CompressJob, parent: Parent) -> list[tuple[str, str]]:
    """Gate rules that cannot apply to the parent's task."""
    if job.gate is not None and job.gate.max_ppl_increase is not None and parent.task != "causal-lm":
        return [("gate.max_ppl_increase", f"bounds perplexity, which only causal LMs have; {parent.ref} is a "
                                          f"{parent.task} model: bound its metric with gate.max_metric_drop (points)")]
    return []


def _run_dir(job: CompressJob, parent: Parent) -> Path:
    from llmos.paths import runs_dir

    if job.output is not None:
        run_dir = Path(job.output).expanduser().resolve()
        if run_dir.exists() and any(run_dir.iterdir()):
            raise SpecError(f"output folder {run_dir} is not empty.", problems=[("output", "must be new or empty")],
                            hint="Pick a new folder, or leave output unset for a fresh one under $LLMOS_HOME/runs.")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = runs_dir() / f"compress-{parent.name}-v{parent.version}-{stamp}"
        n = 1
        while run_dir.exists():  # two compressions started within the same second
            n += 1
            run_dir = run_dir.with_name(f"compress-{parent.name}-v{parent.version}-{stamp}-{n}")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _start_tracking(job: CompressJob, parent: Parent, data: Any, run_dir: Path) -> Any:
    from llmos.tracking import start_run

    tags = {"llmos.recipe": "compress", "llmos.task": parent.task, "llmos.parent": parent.ref,
            "llmos.data_hash": data.data_hash, "llmos.run_dir": str(run_dir),
            "llmos.recipes": ", ".join(r.label for r in job.recipe)}
    return start_run(job.tracking, run_name=f"compress-{parent.name}-v{parent.version}",
                     job=job.model_dump(mode="json"), tags=tags)


def _check_child(folder: Path, label: str) -> dict[str, Any]:
    """The recipe kept the contract: its folder has llmos_model.json with the required fields."""
    path = folder / "llmos_model.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    missing = [k for k in _REQUIRED_INFO if k not in info]
    if missing:
        raise ModelError(f"recipe '{label}' wrote {folder} without {', '.join(missing)} in llmos_model.json.",
                         hint="A bug in that recipe: it must call write_child_info (see compress/_recipe.py).")
    return info


# ---- report, registry and gate helpers --------------------------------------------------------------


def _log_report(tracker: Any, report: dict[str, Any]) -> None:
    metric = report["metric"]
    for row in [report["parent"], *report["children"]]:
        m, key = row["measured"], "parent" if row is report["parent"] else f"child/{row['slug']}"
        values = {metric: m["metrics"][metric], "latency_p50_ms": m["latency_p50_ms"],
                  "latency_p95_ms": m["latency_p95_ms"], "throughput": m["throughput"], "size_mb": m["size_mb"],
                  "params": m["params"], "peak_rss_mb": m["peak_rss_mb"]}
        values["fixed_length_throughput"] = m.get("fixed_length", m)["throughput"]
        values.update(row.get("vs_parent", {}))
        if "gate" in row:
            values["gate_passed"] = 1.0 if row["gate"]["passed"] else 0.0
        tracker.log_metrics({f"{key}/{k}": float(v) for k, v in values.items()}, 0)


def _register(job: CompressJob, tracker: Any, parent: Parent, data: Any, child: dict[str, Any], name: str) -> str:
    from llmos.registry import register_model

    uri = tracker.log_model_dir(Path(child["folder"]), f"children/{child['slug']}")
    vs, gate = child["vs_parent"], child["gate"]
    tags = {"recipe": child["recipe"], "recipe_params": json.dumps(child["params"], sort_keys=True),
            "recipe_label": child["label"], "parent": parent.ref, "parent_name": parent.name,
            "parent_version": parent.version, "task": parent.task, "format": child["format"],
            "base_model": str(parent.info.get("base_model", "")), "data_hash": data.data_hash,
            "eval_data": data.sources["eval"], "calib_data": data.sources["calib"],
            "gate": "passed" if gate["passed"] else "failed", "gate_reason": gate["reason"],
            "metric_drop": f"{vs['metric_drop']:.3f}", "speedup": f"{vs['speedup']:.3f}",
            "latency_ratio": f"{vs['latency_ratio']:.3f}", "size_ratio": f"{vs['size_ratio']:.3f}",
            "speed_from": gate["speed_from"]}
    if parent.task == "causal-lm":  # the figures a perplexity bound judges, and what speed means here
        tags.update(perplexity=f"{child['measured']['metrics']['perplexity']:.4f}",
                    ppl_increase_pct=f"{vs['metric_change_pct']:.3f}", speed_unit="generated tokens/s")
    return register_model(name=name, run_id=tracker.run_id, artifact_uri=uri, alias=None, tags=tags,
                          description=f"{child['label']} of {parent.ref}", tracking_uri=job.tracking.uri)


def _move_alias(job: CompressJob, name: str, children: list[dict[str, Any]]) -> str | None:
    """Point `alias` at the passing child with the highest throughput; failing children never get it."""
    passing = [c for c in children if c["gate"]["passed"]]
    if not job.alias or not passing:
        return None
    from llmos.registry import set_alias

    best = max(passing, key=lambda c: c["measured"]["throughput"])
    set_alias(name, best["registered"], job.alias, tracking_uri=job.tracking.uri)
    return str(best["registered"])
