"""`llmos deploy MODEL_REF|SPEC | ls | show | logs | promote | rollback` and `llmos undeploy NAME`:
deployments on the control plane."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from llmos.cli._render import JsonFlag, console, print_json


class _DeployGroup(TyperGroup):
    """`llmos deploy sentiment@production` is `llmos deploy create sentiment@production`; ls, show,
    logs, promote and rollback are the other subcommands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["create", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_DeployGroup, no_args_is_help=True,
                  help="Deploy a model (`llmos deploy MODEL`, short for `llmos deploy create MODEL`); list, "
                       "show and read the logs of deployments; promote or roll back a canary.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="deploy")
    root.command()(undeploy)


@app.command("create")
def deploy(
    model: Annotated[str | None, typer.Argument(help="registry reference, e.g. sentiment@production, or a "
                                                     "kind: serve spec file")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides, e.g. replicas.max=3")] = None,
    spec: Annotated[Path | None, typer.Option(help="a kind: serve spec instead of MODEL")] = None,
    name: Annotated[str | None, typer.Option(help="deployment name", show_default="the model's name")] = None,
    port: Annotated[int | None, typer.Option(help="front port clients call (server.port)",
                                             show_default="the spec's server.port")] = None,
    replicas: Annotated[str | None, typer.Option(help="MIN or MIN:MAX replicas (replicas.min, replicas.max), "
                                                      "e.g. 1:4")] = None,
    canary: Annotated[str | None, typer.Option(help="to a running deployment: give the new version this share "
                                                    "first (10% means steps 10,50,100; or list the steps: "
                                                    "5,25,100), promoted or rolled back on live figures "
                                                    "(canary.steps; the spec's canary: section sets the bounds)")]
    = None,
    json_out: JsonFlag = False,
) -> None:
    """Deploy a model version with 1..N replicas behind one address (`llmos deploy MODEL` for short);
    deploying the same name again rolls it to the version the reference points at now, or, with
    --canary, tries it on a share of the traffic first."""
    from llmos.api import Client
    from llmos.api._resolve import is_spec_file

    if model is not None and spec is None and is_spec_file(model):
        model, spec = None, Path(model)
    extra = list(overrides or [])
    if canary is not None:
        extra.append(f"canary.steps={_canary_steps(canary)}")
    if port is not None:
        extra.append(f"server.port={port}")
    if replicas:
        low, _, high = replicas.partition(":")
        extra += [f"replicas.min={low}", f"replicas.max={high or low}"]
    with Client() as client:
        d = client.deploy(model, spec=spec, name=name, dotted=extra)
    if json_out:
        print_json(d)
        return
    if d.rolled and d.canary and d.canary.get("state") == "watching":
        console.print(f"canary of [bold]{d.name}[/]: {d.model} takes {d.canary['percent']:g}% of the traffic "
                      f"at {d.url}")
        console.print(f"next: llmos deploy show {d.name}   (or by hand: llmos deploy promote|rollback {d.name})")
        return
    verb = "rolling" if d.rolled else "deployed"
    console.print(f"{verb} [bold]{d.name}[/] ({d.model}) at {d.url}")
    console.print(f"next: llmos deploy show {d.name}   (stop it with: llmos undeploy {d.name})")


def _canary_steps(text: str) -> str:
    from llmos.deploy._canary import parse_canary_percent
    from llmos.errors import SpecError

    try:
        return "[" + ",".join(f"{s:g}" for s in parse_canary_percent(text)) + "]"
    except ValueError as exc:
        raise SpecError("bad --canary:", problems=[("canary.steps", str(exc))]) from None


@app.command("ls")
def ls(json_out: JsonFlag = False) -> None:
    """List deployments: model and version, address, replicas ready of desired, rollout."""
    from rich.table import Table

    from llmos.api import Client

    with Client() as client:
        rows = client.deployments()
    if json_out:
        print_json(rows)
        return
    if not rows:
        console.print("no deployments.\nnext: llmos deploy NAME@ALIAS   (see llmos models ls)")
        return
    table = Table("name", "model", "version", "url", "replicas", "owner", "rollout")
    for d in rows:
        table.add_row(d.name, d.model, d.model_version, d.url, f"{d.ready}/{d.desired} ({d.min}..{d.max})"
                      + (f", {d.waiting} waiting" if d.waiting else ""), d.owner, _rollout(d))
    console.print(table)
    console.print(f"next: llmos deploy show {rows[0].name}")


def _rollout(d: Any) -> str:
    if d.canary and d.canary["state"] == "watching":
        return f"canary {d.canary['percent']:g}%"
    return d.rollout or "-"


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="deployment name")], json_out: JsonFlag = False) -> None:
    """One deployment: its replicas (state, version, port, cores), scaling and latest events."""
    from rich.markup import escape
    from rich.table import Table

    from llmos.api import Client

    with Client() as client:
        d = client.deployment(name)
    if json_out:
        print_json(d)
        return
    console.print(f"deployment [bold]{d.name}[/]: {d.model} → {d.model_version} at {d.url}, owner {d.owner}")
    console.print(f"  replicas  {d.ready} ready of {d.desired} desired ({d.min}..{d.max})"
                  + (f"; {d.waiting} waiting for free cores" if d.waiting else ""))
    if d.scaling:
        console.print(f"  scaling   {escape(d.scaling)}")
    if d.rollout:
        console.print(f"  rollout   {d.rollout}")
    if d.canary:
        _show_canary(d.canary)
    table = Table("replica", "state", "version", "pid", "port", "cores")
    for r in d.replicas:
        table.add_row(r.id, r.state, r.version, str(r.pid), str(r.port), ",".join(map(str, r.cores)) or "-")
    console.print(table)
    for event in d.events:
        console.print(f"  event  {escape(event)}")
    console.print(f"next: llmos deploy logs {d.name}   (stop it with: llmos undeploy {d.name})")


@app.command("logs")
def logs(
    name: Annotated[str, typer.Argument(help="deployment name")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep streaming until Ctrl-C")] = False,
) -> None:
    """Print a deployment's logs: its front router's and each replica's."""
    from llmos.api import Client
    from llmos.cli.jobs import write_chunks

    with Client() as client, contextlib.suppress(KeyboardInterrupt):
        write_chunks(client.deployment_log_chunks(name, follow=follow), follow)


def _show_canary(c: dict[str, Any]) -> None:
    from rich.markup import escape

    steps = " → ".join(f"{s:g}%" for s in c["steps"])
    state = c["state"].replace("_", " ")
    console.print(f"  canary    {state}: {c['to_revision']} ({c['percent']:g}% of the traffic), "
                  f"{c['from_revision']} ({100 - c['percent']:g}%); step {c['step']} of {steps}")
    for who, f in c.get("figures", {}).items():
        p95 = "-" if f["p95_ms"] is None else f"{f['p95_ms']:.0f} ms"
        compared = f", {f['differed']} of {f['compared']} labels differ" if f["compared"] else ""
        console.print(f"    {who:<8} {f['requests']} requests, {f['errors']} failed ({f['error_rate']:.1%}), "
                      f"p95 {p95}{compared}")
    console.print(f"  verdict   {escape(c['verdict'])}")


@app.command("promote")
def promote(name: Annotated[str, typer.Argument(help="deployment name")], json_out: JsonFlag = False) -> None:
    """Promote a deployment's running canary now: the new version takes over, the old one drains."""
    _canary_action(name, "promote", json_out)


@app.command("rollback")
def rollback(name: Annotated[str, typer.Argument(help="deployment name")], json_out: JsonFlag = False) -> None:
    """Roll a deployment's running canary back now: all traffic to the current version, the new one drains."""
    _canary_action(name, "rollback", json_out)


def _canary_action(name: str, action: str, json_out: bool) -> None:
    from llmos.api import Client

    with Client() as client:
        d = client.promote(name) if action == "promote" else client.rollback(name)
    if json_out:
        print_json(d)
        return
    console.print(f"deployment {name}: {(d.canary or {}).get('verdict', action)}")
    console.print(f"next: llmos deploy show {name}")


def undeploy(name: Annotated[str, typer.Argument(help="deployment name")]) -> None:
    """Stop a deployment: its replicas drain in-flight requests, then exit."""
    from llmos.api import Client

    with Client() as client:
        client.undeploy(name)
    console.print(f"deployment {name} stopping: its replicas finish in-flight requests, then exit.\n"
                  "next: llmos deploy ls")
