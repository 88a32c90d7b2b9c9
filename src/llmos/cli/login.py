"""`llmos login URL` / `llmos logout`: use a control plane on another machine from this one.

The URL and token are kept in a file only this user can read (`llmos.control._remote`); the
token comes from a file or standard input, never the command line (shell history, `ps`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from llmos.cli._render import console


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)


def login(
    url: Annotated[str, typer.Argument(help="the control plane, e.g. https://gpu-box:8470")],
    token_file: Annotated[Path | None, typer.Option(help="read the token from this file",
                                                    show_default="standard input")] = None,
    ca_cert: Annotated[Path | None, typer.Option(help="trust this certificate (PEM) for the URL",
                                                 show_default="the system's CAs")] = None,
    fingerprint: Annotated[str | None, typer.Option(
        help="trust the certificate with this SHA-256 fingerprint (printed by llmos up)")] = None,
) -> None:
    """Check URL and a token against a control plane, then make it the default of every command."""
    from llmos.control._login import log_in

    token = (token_file.read_text() if token_file else _stdin_token()).strip()
    ca_pem = ca_cert.read_bytes() if ca_cert else None
    who, path = log_in(url, token, ca_pem, fingerprint)
    console.print(f"logged in to {url} as {who['owner']} ({who['role']}); saved in {path} (mode 0600)")
    if url.startswith("http://"):
        console.print("[yellow]WARNING: plain HTTP: the token crosses the network readable. Serve the API over "
                      "HTTPS (llmos up --host ... without --insecure-http).[/]")
    console.print("next: llmos status   (llmos logout forgets it)")


def logout() -> None:
    """Forget the control plane `llmos login` saved (and its token)."""
    from llmos.control._remote import forget_login

    console.print("logged out" if forget_login() else "not logged in")


def _stdin_token() -> str:
    if sys.stdin.isatty():
        return typer.prompt("token", hide_input=True)
    return sys.stdin.read()
