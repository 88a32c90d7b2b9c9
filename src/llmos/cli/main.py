"""Entry point of the `llmos` CLI. Imports here stay light: `llmos --help` loads no torch."""

from __future__ import annotations

from typing import Annotated

import typer

from llmos import __version__
from llmos._exit import skip_collection_at_exit
from llmos._threads import prepare_process
from llmos.cli import audit as audit_cli
from llmos.cli import bench as bench_cli
from llmos.cli import compress as compress_cli
from llmos.cli import control as control_cli
from llmos.cli import export as export_cli
from llmos.cli import login as login_cli
from llmos.cli import models as models_cli
from llmos.cli import projects as projects_cli
from llmos.cli import roots as roots_cli
from llmos.cli import run as run_cli
from llmos.cli import secrets as secrets_cli
from llmos.cli import serve as serve_cli
from llmos.cli import sim as sim_cli
from llmos.cli import spec as spec_cli
from llmos.cli import train as train_cli
from llmos.cli._render import debug, fail
from llmos.errors import LlmosError

app = typer.Typer(
    name="llmos",
    help="An operating system for language models: fine-tune, track, register, compress, serve, schedule.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell (Typer's).
    add_completion=True,
)
app.add_typer(spec_cli.app, name="spec")
app.add_typer(models_cli.app, name="models")
app.add_typer(sim_cli.app, name="sim")
app.add_typer(bench_cli.app, name="bench")
app.add_typer(projects_cli.app, name="projects")
app.add_typer(projects_cli.users_app, name="users")
app.add_typer(secrets_cli.app, name="secrets")
app.add_typer(roots_cli.app, name="roots")
app.add_typer(audit_cli.app, name="audit")
train_cli.register(app)
compress_cli.register(app)
run_cli.register(app)
serve_cli.register(app)
export_cli.register(app)
control_cli.register(app)
login_cli.register(app)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="print the llmos version and exit")] = False,
    address: Annotated[str | None, typer.Option(help="the control plane to use, e.g. https://gpu-box:8470",
                                                envvar="LLMOS_ADDRESS", show_default="llmos login, else local")] = None,
    ca_cert: Annotated[str | None, typer.Option(help="trust this certificate (PEM) for --address",
                                                envvar="LLMOS_CA_CERT")] = None,
) -> None:
    """An operating system for language models: fine-tune, track, register, compress, serve, schedule."""
    import os

    # Read by llmos.control.Client.local(), which every control-plane command goes through.
    for name, value in (("LLMOS_ADDRESS", address), ("LLMOS_CA_CERT", ca_cert)):
        if value:
            os.environ[name] = value


@app.command(hidden=True)
def version() -> None:
    """Print the llmos version (as llmos --version)."""
    typer.echo(__version__)


def main() -> None:
    skip_collection_at_exit()  # the process ends without CPython's last walk over every object
    # OpenMP's waiting for every command that runs torch in this process (compress, export) and
    # for the processes it starts; before any import of torch, as libgomp reads it once.
    prepare_process()
    try:
        app()
    except LlmosError as exc:
        if debug():
            raise
        fail(exc)


if __name__ == "__main__":
    main()
