"""`llmos projects ls|create|show|add-member|rm-member|grant|quota` and `llmos users ls`.

Projects group users and their jobs: each member has a role in it (viewer, developer, admin);
an admin grants it priority classes above normal and sets its quota (caps, guarantees, weight).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmos.cli._render import JsonFlag, console, print_json

app = typer.Typer(help="Projects: members and their roles, priority grants, quotas.", no_args_is_help=True)
users_app = typer.Typer(help="Users of the control plane (a user is made with its first token).",
                        no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="the project's name")]


@app.command("ls")
def list_projects(json_out: JsonFlag = False) -> None:
    """Projects you are a member of (admins: all) with your role, the granted class and the quota."""
    from rich.markup import escape
    from rich.table import Table

    from llmos.control import Client

    with Client.local() as client:
        rows = client.projects()
    if json_out:
        print_json(rows)
        return
    table = Table()
    for column in ("project", "your role", "priority up to", "weight", "caps", "guarantees"):
        table.add_column(column)
    for p in rows:
        table.add_row(escape(p["name"]), p["your_role"] or "-", p["priority_granted"], f"{p['weight']:g}",
                      _limits(p, "cap"), _limits(p, "guarantee"))
    console.print(table)
    console.print("next: llmos projects show NAME")


@app.command()
def create(name: Name) -> None:
    """Make a project (admins); then add its members."""
    from llmos.control import Client

    with Client.local() as client:
        client.create_project(name)
    console.print(f"project {name} created")
    console.print(f"next: llmos projects add-member {name} USER --role developer")


@app.command()
def show(name: Name, json_out: JsonFlag = False) -> None:
    """One project: members and roles, the granted class, the quota, its active jobs."""
    from llmos.control import Client

    with Client.local() as client:
        p = client.project(name)
    if json_out:
        print_json(p)
        return
    _print(p)
    console.print(f"next: llmos jobs submit JOB.yaml --project {name}")


@app.command("add-member")
def add_member(
    project: Name,
    user: Annotated[str, typer.Argument(help="the user (a token's owner)")],
    role: Annotated[str, typer.Option(help="viewer (sees), developer (submits, cancels own, deploys) or admin")],
) -> None:
    """Add a member to a project, or change its role there (admins, and the project's admins)."""
    from llmos.control import Client

    with Client.local() as client:
        _print(client.add_member(project, user, role))


@app.command("rm-member")
def rm_member(project: Name, user: Annotated[str, typer.Argument(help="the member to remove")]) -> None:
    """Remove a member from a project (admins, and the project's admins)."""
    from llmos.control import Client

    with Client.local() as client:
        _print(client.remove_member(project, user))


@app.command()
def grant(
    project: Name,
    priority: Annotated[str, typer.Option(help="the highest class its jobs may use: high, critical "
                                               "(normal takes a grant back)")],
) -> None:
    """Let a project's developers submit above normal priority (admins)."""
    from llmos.control import Client

    with Client.local() as client:
        _print(client.grant(project, priority))


@app.command()
def quota(
    project: Name,
    cpus: Annotated[float | None, typer.Option(help="hard cap: CPUs its jobs may hold at most")] = None,
    gpus: Annotated[float | None, typer.Option(help="hard cap: GPUs its jobs may hold at most")] = None,
    memory_gb: Annotated[float | None, typer.Option(help="hard cap: memory (GB) its jobs may hold at most")] = None,
    guarantee_cpus: Annotated[float | None, typer.Option(help="CPUs it may reclaim from borrowers")] = None,
    guarantee_gpus: Annotated[float | None, typer.Option(help="GPUs it may reclaim from borrowers")] = None,
    guarantee_memory_gb: Annotated[float | None, typer.Option(help="memory (GB) it may reclaim")] = None,
    weight: Annotated[float | None, typer.Option(help="fair-share weight (1 until set)")] = None,
    clear: Annotated[bool, typer.Option(help="first remove every limit (weight back to 1)")] = False,
) -> None:
    """Set a project's quota (admins): the scheduler keeps it under its caps (its jobs wait), lets it
    reclaim its guarantees, and shares the rest by weight. Options left out keep their value."""
    from llmos.control import Client

    given = {"cap_cpus": cpus, "cap_gpus": gpus, "cap_memory_gb": memory_gb, "guarantee_cpus": guarantee_cpus,
             "guarantee_gpus": guarantee_gpus, "guarantee_memory_gb": guarantee_memory_gb, "weight": weight}
    with Client.local() as client:
        _print(client.set_quota(project, clear=clear, **{k: v for k, v in given.items() if v is not None}))


@users_app.command("ls")
def list_users(json_out: JsonFlag = False) -> None:
    """Users: their default project, their roles in projects and how many active tokens (admins)."""
    from rich.markup import escape
    from rich.table import Table

    from llmos.control import Client

    with Client.local() as client:
        rows = client.users()
    if json_out:
        print_json(rows)
        return
    table = Table()
    for column in ("user", "default project", "projects (role)", "tokens"):
        table.add_column(column)
    for u in rows:
        roles = ", ".join(f"{m['project']} ({m['role']})" for m in u["projects"]) or "-"
        table.add_row(escape(u["name"]), escape(u["default_project"]), escape(roles), str(u["tokens"]))
    console.print(table)
    console.print("next: llmos projects add-member PROJECT USER --role developer")


def _limits(p: dict[str, Any], kind: str) -> str:
    parts = [f"{p[f'{kind}_{r}']:g} {unit}" for r, unit in (("cpus", "CPUs"), ("gpus", "GPUs"), ("memory_gb", "GB"))
             if p.get(f"{kind}_{r}") is not None]
    return ", ".join(parts) or "-"


def _print(p: dict[str, Any]) -> None:
    from rich.markup import escape

    console.print(f"project {escape(p['name'])}: priority up to {p['priority_granted']}, weight {p['weight']:g}, "
                  f"caps {_limits(p, 'cap')}, guarantees {_limits(p, 'guarantee')}; "
                  f"{p.get('queued_or_running', 0)} job(s) queued or running")
    for m in p.get("members", []):
        console.print(f"  {escape(m['user'])}: {m['role']}")
