"""`llmos audit [--since --actor --action --json]` and `llmos audit verify` (admins only)."""

from __future__ import annotations

import re
import time
from typing import Annotated

import typer

from llmos.cli._render import JsonFlag, console, print_json
from llmos.errors import LlmosError

app = typer.Typer(help="The control plane's audit log: who did what, from where, allowed or refused (admins).",
                  invoke_without_command=True)

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now_s: float) -> float:
    """`30m`, `2h`, `7d` (ago), `2026-12-06` or `2026-12-06T04:30` (local time), or epoch seconds."""
    text = text.strip()
    ago = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text)
    if ago:
        return now_s - float(ago.group(1)) * _UNITS_S[ago.group(2)]
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    for layout in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return time.mktime(time.strptime(text, layout))
        except ValueError:
            continue
    raise LlmosError(f"--since {text!r} is not a time.",
                     hint="Use an age (30m, 2h, 7d), a date (2026-12-06, 2026-12-06T04:30) or epoch seconds.")


@app.callback()
def audit(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="only rows from then on: 30m, 2h, 7d, 2026-12-06T04:30")] = None,
    actor: Annotated[str | None, typer.Option(help="only this user's rows ('anonymous': calls without a "
                                                   "valid token)")] = None,
    action: Annotated[str | None, typer.Option(help="only this action: submit, cancel, tokens.create, ... "
                                                    "(tokens.* matches by prefix)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="rows at most, newest first")] = 100,
    json_out: JsonFlag = False,
) -> None:
    """Audit rows, newest first: every state-changing call and every refused one."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.markup import escape
    from rich.table import Table

    from llmos.control import Client

    since_s = parse_since(since, time.time()) if since else None
    with Client.local() as client:
        rows = client.audit(limit=limit, since=since_s, actor=actor, action=action)
    if json_out:
        print_json(rows)
        return
    table = Table()
    for column in ("id", "when", "actor", "role", "project", "action", "target", "from", "outcome"):
        table.add_column(column, no_wrap=column in ("id", "when"))
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at_s"]))
        outcome = r["outcome"] if r["outcome"] == "ok" else f"[red]{r['outcome']}[/]"
        table.add_row(str(r["id"]), when, escape(r["actor"]), r["role"], escape(r.get("project") or "-"),
                      escape(r["action"]), escape(r["target"]), escape(r["source"]), outcome)
    console.print(table)
    console.print("next: llmos audit verify   (checks that no row was deleted, altered, reordered or inserted)")


@app.command()
def verify(json_out: JsonFlag = False) -> None:
    """Check the hash chain of the whole log; exit 1 and name the first bad row if it was tampered with."""
    from llmos.control import Client

    with Client.local() as client:
        verdict = client.audit_verify()
    if json_out:
        print_json(verdict)
    elif verdict["ok"]:
        console.print(f"the audit log is intact: {verdict['rows']} rows, {verdict['chained']} chained.")
    else:
        console.print(f"[bold red]the audit log was tampered with:[/] {verdict['problem']}")
        console.print(f"next: llmos audit --json --limit 10000 | less   (the rows around row {verdict['first_bad']})")
    if not verdict["ok"]:
        raise typer.Exit(1)
