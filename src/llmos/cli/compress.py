"""`llmos compress MODEL_REF|SPEC --recipe R [--recipe R2 ...] [--eval DATA] [--gate ...]`.

The flags are the spec's keys: `--recipe` = `recipe:`, `--eval` = `eval:`, `--gate k=v,...` =
`gate:`; a spec file given instead of MODEL_REF takes the flags as overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llmos.cli._render import console, err_console, print_json


def register(app: typer.Typer) -> None:
    app.command()(compress)


def compress(
    target: Annotated[str | None, typer.Argument(
        help="the parent (sentiment@candidate, sentiment/3), or a `kind: compress` spec file")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides, e.g. report.batch_size=16")] = None,
    recipe: Annotated[list[str] | None, typer.Option(
        "--recipe", "-r", help="recipe[:k=v,...], repeatable: bf16, int8, onnx-int8, prune-structured:heads=0.3 ...")
    ] = None,
    eval_data: Annotated[str | None, typer.Option("--eval", help="eval data (file or hf:ID) for the task metric")
                         ] = None,
    calib: Annotated[str | None, typer.Option(help="calibration data", show_default="--train, else --eval")] = None,
    train: Annotated[str | None, typer.Option(help="training data, for recipes that train (distill, recovery)")] = None,
    gate: Annotated[str | None, typer.Option(
        help="promotion rules, e.g. max_metric_drop=0.5,min_speedup=1.5,max_size_ratio=0.5")] = None,
    alias: Annotated[str | None, typer.Option(help="alias for the best child that passes the gate")] = None,
    name: Annotated[str | None, typer.Option(help="register the children under this name",
                                                      show_default="the parent's")] = None,
    output: Annotated[Path | None, typer.Option(help="work folder (children, report.json, pareto.png)")] = None,
    list_recipes: Annotated[bool, typer.Option("--list", help="list the recipes and their parameters, then exit")
                            ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print the recipes (--list) or the report as JSON")
                        ] = False,
) -> None:
    """Compress a registered model with one or more recipes, measure every child against it, register
    them with lineage, and move --alias to the best child that passes --gate."""
    if list_recipes:
        _print_recipes(json_out)
        return
    if target is None:
        from llmos.errors import SpecError

        raise SpecError("say what to compress.", hint="llmos compress sentiment@candidate --recipe int8 --eval dev.csv"
                                                       "   (or a spec: llmos spec example compress > job.yaml)")
    job = _job(target, overrides or [], recipe=recipe, eval_data=eval_data, calib=calib, train=train, gate=gate,
               alias=alias, name=name, output=output)
    from llmos.compress import compress as run_compress
    from llmos.compress._report import render_table

    progress = err_console if json_out else console  # stdout carries only the JSON
    result = run_compress(job, note=lambda text: progress.print(f"[dim]{_escape(text)}[/]"))
    if json_out:
        print_json({"registered_name": result.registered_name, "report": result.report, "run_id": result.run_id,
                    "report_file": str(result.report_file), "plot_file": str(result.plot_file)})
        return
    console.print(render_table(result.report))
    _print_outcome(result)


def _job(target: str, overrides: list[str], **flags: Any) -> Any:
    from llmos.api import compress_job

    return compress_job(target, [*_flag_overrides(**flags), *overrides])


def _flag_overrides(*, recipe: list[str] | None, eval_data: str | None, calib: str | None, train: str | None,
                    gate: str | None, alias: str | None, name: str | None, output: Path | None) -> list[str]:
    """Flags as dotted overrides, so they validate (and fail) exactly like spec keys."""
    from llmos.spec._load import _resolve_paths

    dotted = []
    paths = {"eval": eval_data, "calib": calib, "train": train}
    _resolve_paths(paths, base=Path.cwd())
    for key, value in {**paths, "alias": alias, "name": name,
                       "output": str(output.resolve()) if output else None}.items():
        if value is not None:
            dotted.append(f"{key}={value}")
    for item in filter(None, (p.strip() for p in (gate or "").split(","))):
        dotted.append(f"gate.{item}")
    return dotted + ([f"recipe={_yaml_list(recipe)}"] if recipe else [])


def _yaml_list(items: list[str]) -> str:
    import json

    return json.dumps(items)  # JSON is YAML: the override parser reads it back as a list


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _recipes() -> list[dict[str, Any]]:
    from llmos.compress import RECIPE_NAMES, get_recipe
    from llmos.errors import SpecError

    rows: list[dict[str, Any]] = []
    for recipe_name in RECIPE_NAMES:
        try:
            recipe = get_recipe(recipe_name)
        except SpecError:
            rows.append({"name": recipe_name, "summary": "(not available in this version)", "params": {}})
            continue
        params = {k: "(required)" if f.is_required() else f.default for k, f in recipe.params.model_fields.items()}
        rows.append({"name": recipe.name, "summary": recipe.summary, "params": params})
    return rows


def _print_recipes(json_out: bool = False) -> None:
    from rich.table import Table

    rows = _recipes()
    if json_out:
        print_json(rows)
        return
    table = Table(show_header=True, box=None, pad_edge=False)
    for col in ("recipe", "what it does", "parameters (name=default)"):
        table.add_column(col)
    for row in rows:
        params = ", ".join(f"{k} (required)" if v == "(required)" else f"{k}={v!r}" for k, v in row["params"].items())
        table.add_row(row["name"], row["summary"], _escape(params or ("-" if "not available" not in row["summary"]
                                                                      else "")))
    console.print(table)
    console.print("example: llmos compress sentiment@candidate --recipe int8 --recipe "
                  "prune-structured:heads=0.3 --eval dev.csv --gate max_metric_drop=0.5,min_speedup=1.5")


def _print_outcome(result: Any) -> None:
    report, name = result.report, result.registered_name
    for child in report["children"]:
        gate = child["gate"]
        verdict = "passed the gate" if gate["passed"] else f"failed the gate: {gate['reason']}"
        console.print(f"registered {_escape(name)}/{child['registered']}  {_escape(child['label'])}  ({verdict})")
    alias = report["alias"]
    if alias["name"] and alias["version"]:
        console.print(f"[green]{_escape(name)}@{alias['name']}[/] -> version {alias['version']}")
    elif alias["name"]:
        console.print(f"[yellow]no child passed the gate[/]: {_escape(name)}@{alias['name']} was not moved")
    console.print(f"report: {result.report_file}\nplot:   {result.plot_file}\nMLflow run: {result.run_id}")
    console.print("next:")
    first = report["children"][0]["registered"] if report["children"] else None
    ref = f"{name}@{alias['name']}" if alias["name"] and alias["version"] else f"{name}/{first}"
    console.print(f"  llmos models show {_escape(ref)}")
