"""`llmos deploy MODEL_REF` and `llmos undeploy NAME`: deployments on the control plane."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmos.cli._render import console


def register(app: typer.Typer) -> None:
    app.command()(deploy)
    app.command()(undeploy)


def deploy(
    model: Annotated[str | None, typer.Argument(help="registry reference, e.g. sentiment@production")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides, e.g. replicas.max=3")] = None,
    spec: Annotated[Path | None, typer.Option(help="a kind: serve spec instead of MODEL")] = None,
    name: Annotated[str | None, typer.Option(help="deployment name [default: the model's name]")] = None,
    port: Annotated[int | None, typer.Option(help="front port clients call [default: the spec's server.port]")] = None,
    replicas: Annotated[str | None, typer.Option(help="MIN or MIN:MAX replicas, e.g. 1:4")] = None,
) -> None:
    """Deploy a model version with 1..N replicas behind one address; deploying the same name again
    rolls it to the version the reference points at now (no failed request)."""
    from llmos.control import Client
    from llmos.errors import SpecError

    if (model is None) == (spec is None):
        raise SpecError("give a MODEL reference or --spec FILE (one of them).",
                        hint="e.g. llmos deploy sentiment@production")
    raw: dict = {"kind": "serve"}
    if spec is not None:
        from llmos.control._submit import load_submission

        raw = load_submission(spec).model_dump(mode="json", by_alias=True)
    else:
        raw["model"] = model
        raw["name"] = name or model.split("@")[0].split("/")[0].removeprefix("models:")  # type: ignore[union-attr]
    extra = list(overrides or [])
    if name and spec is not None:
        extra.append(f"name={name}")
    if port is not None:
        extra.append(f"server.port={port}")
    if replicas:
        low, _, high = replicas.partition(":")
        extra += [f"replicas.min={low}", f"replicas.max={high or low}"]
    with Client.local() as client:
        d = client.deploy(raw, extra)
    verb = "rolling" if d.get("rolled") else "deployed"
    console.print(f"{verb} [bold]{d['name']}[/] ({d.get('model')}) at {d.get('url')}")
    console.print(f"next: llmos status   (stop it with: llmos undeploy {d['name']})")


def undeploy(name: Annotated[str, typer.Argument(help="deployment name")]) -> None:
    """Stop a deployment: its replicas drain in-flight requests, then exit."""
    from llmos.control import Client

    with Client.local() as client:
        client.undeploy(name)
    console.print(f"deployment {name} stopping: its replicas finish in-flight requests, then exit.\n"
                  "next: llmos status")
