"""`llmos compress MODEL_REF|SPEC --recipe R [--recipe R2 ...] [--eval DATA] [--gate ...]`.

The flags are the spec's keys: `--recipe` = `recipe:`, `--eval` = `eval:`, `--gate k=v,...` =
`gate:`; a spec file given instead of MODEL_REF takes the flags as overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llmos.cli._render import console


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
    calib: Annotated[str | None, typer.Option(help="calibration data; default: --train, else --eval")] = None,
    train: Annotated[str | None, typer.Option(help="training data, for recipes that train (distill, recovery)")] = None,
    gate: Annotated[str | None, typer.Option(
        help="promotion rules, e.g. max_metric_drop=0.5,min_speedup=1.5,max_size_ratio=0.5")] = None,
    alias: Annotated[str | None, typer.Option(help="alias for the best child that passes the gate")] = None,
    name: Annotated[str | None, typer.Option(help="register the children under this name (default: the parent's)")
                    ] = None,
    output: Annotated[Path | None, typer.Option(help="work folder (children, report.json, pareto.png)")] = None,
    list_recipes: Annotated[bool, typer.Option("--list", help="list the recipes and their parameters, then exit")
                            ] = False,
) -> None:
    """Compress a registered model with one or more recipes, measure every child against it, register
    them with lineage, and move --alias to the best child that passes --gate."""
    if list_recipes:
        _print_recipes()
        return
    if target is None:
        from llmos.errors import SpecError

        raise SpecError("say what to compress.", hint="llmos compress sentiment@candidate --recipe int8 --eval dev.csv"
                                                       "   (or a spec: llmos spec example compress > job.yaml)")
    job = _job(target, overrides or [], recipe=recipe, eval_data=eval_data, calib=calib, train=train, gate=gate,
               alias=alias, name=name, output=output)
    from llmos.compress import compress as run_compress
    from llmos.compress._report import render_table

    result = run_compress(job, note=lambda text: console.print(f"[dim]{_escape(text)}[/]"))
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


def _print_recipes() -> None:
    from rich.table import Table

    from llmos.compress import RECIPE_NAMES, get_recipe
    from llmos.errors import SpecError

    table = Table(show_header=True, box=None, pad_edge=False)
    for col in ("recipe", "what it does", "parameters (name=default)"):
        table.add_column(col)
    for recipe_name in RECIPE_NAMES:
        try:
            recipe = get_recipe(recipe_name)
        except SpecError:
            table.add_row(recipe_name, "(not available in this version)", "")
            continue
        params = ", ".join(f"{k}={f.default!r}" if not f.is_required() else f"{k} (required)"
                           for k, f in recipe.params.model_fields.items())
        table.add_row(recipe.name, recipe.summary, _escape(params or "-"))
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
