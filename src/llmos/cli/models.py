"""`llmos models ls | show | alias | rollback`: the registry from the shell.

Each command parses its arguments, calls `llmos.registry` and renders the answer; mlflow loads
inside the command, never when `llmos --help` runs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from llmos.cli._render import JsonFlag, console, print_json

if TYPE_CHECKING:
    from llmos.registry import ModelDetails, VersionInfo

app = typer.Typer(help="Registered models: versions, aliases, lineage and rollback.", no_args_is_help=True)

_LINEAGE = ("run_id", "data_hash", "base_model", "recipe")
_METRICS_SHOWN = 4


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000)) if ms else ""


@app.command("ls")
def ls(json_out: JsonFlag = False) -> None:
    """List registered models with their latest version and aliases."""
    from rich.markup import escape
    from rich.table import Table

    from llmos.registry import list_models

    models = list_models()
    if json_out:
        print_json(models)
        return
    if not models:
        console.print("no registered models yet.\nnext: llmos quickstart  (trains and registers one)")
        return
    table = Table("name", "latest", "versions", "aliases", "updated", "description")
    for m in models:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items()))
        table.add_row(m.name, m.latest_version or "-", str(m.version_count), aliases, _when(m.updated_ms),
                      escape(m.description))
    console.print(table)
    console.print(f"next: llmos models show {models[0].name}")


@app.command("show")
def show_cmd(ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME/VERSION")],
             json_out: JsonFlag = False) -> None:
    """Show a model's versions (or one version) with aliases, lineage and run metrics."""
    from llmos.registry import show as show_model

    details = show_model(ref)
    if json_out:
        print_json(details)
        return
    if details.ref.alias or details.ref.version:
        _one_version(details, details.versions[0])
        console.print(f"next: llmos models alias {details.name} {details.versions[0].version} ALIAS")
    else:
        _all_versions(details)
        console.print(f"next: llmos models show {details.name}/{details.versions[-1].version}"
                      if details.versions else "next: llmos models ls")


def _all_versions(details: ModelDetails) -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{details.name}[/]" + (f": {escape(details.description)}" if details.description else ""))
    for alias, versions in sorted(details.alias_history.items()):
        now = details.aliases.get(alias, "(removed)")
        console.print(f"  alias {alias} → {now}   history: {' → '.join(versions)}")
    table = Table("version", "aliases", "created", "run", "data_hash", "metrics")
    for v in details.versions:
        metrics = ", ".join(f"{k}={val:.4g}" for k, val in list(v.metrics.items())[:_METRICS_SHOWN])
        table.add_row(v.version, ", ".join(v.aliases), _when(v.created_ms), v.run_id[:12],
                      v.tags.get("data_hash", "")[:12], metrics)
    console.print(table)


def _one_version(details: ModelDetails, v: VersionInfo) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{details.name}/{v.version}", show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")  # URIs and hashes are shown whole, folded
    table.add_row("aliases", ", ".join(v.aliases) or "-")
    table.add_row("created", _when(v.created_ms))
    table.add_row("status", v.status)
    table.add_row("source", escape(v.source))
    for key in _LINEAGE:
        table.add_row(key, escape(v.tags.get(key, "-")))
    for key, value in sorted(v.tags.items()):
        if key not in _LINEAGE:
            table.add_row(f"tag {escape(key)}", escape(value))
    for key, value in v.metrics.items():
        table.add_row(f"metric {key}", f"{value:.6g}")
    if v.description:
        table.add_row("description", escape(v.description))
    console.print(table)


@app.command("alias")
def alias_cmd(
    name: Annotated[str, typer.Argument(help="registered model name")],
    version: Annotated[str, typer.Argument(help="version number")],
    alias: Annotated[str, typer.Argument(help="alias to point at it, e.g. production")],
) -> None:
    """Point ALIAS at VERSION of NAME (the move is remembered for rollback)."""
    from llmos.registry import set_alias

    previous = set_alias(name, version, alias)
    was = f" (was {previous})" if previous and previous != version else ""
    console.print(f"[green]ok[/] {name}@{alias} → version {version}{was}")
    console.print(f"next: llmos models show {name}@{alias}" + (
        f"   undo: llmos models rollback {name} {alias}" if was else ""))


@app.command("rollback")
def rollback_cmd(
    name: Annotated[str, typer.Argument(help="registered model name")],
    alias: Annotated[str, typer.Argument(help="alias to move back, e.g. production")],
) -> None:
    """Point ALIAS back at the version it named before."""
    from llmos.registry import rollback as rollback_alias

    before, after = rollback_alias(name, alias)
    console.print(f"[green]ok[/] {name}@{alias}: version {before} → {after}")
    console.print(f"next: llmos models show {name}@{alias}")


@app.command("presets")
def presets(json_out: JsonFlag = False) -> None:
    """List the model presets that `model.name` accepts besides folders and hub ids."""
    from rich.table import Table

    from llmos.models import PRESETS

    if json_out:
        print_json([{"name": p.name, "tasks": list(p.tasks), "description": p.description} for p in PRESETS.values()])
        return
    table = Table("name", "tasks", "description")
    for preset in PRESETS.values():
        table.add_row(preset.name, ", ".join(preset.tasks), preset.description)
    console.print(table)
    console.print("next: llmos spec example train   (set model.name to a preset)")
