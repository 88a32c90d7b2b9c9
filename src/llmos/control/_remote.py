"""Which control plane a client talks to, with which token, trusting which certificate.

    --address / $LLMOS_ADDRESS   a control plane's URL (its token: $LLMOS_TOKEN, else the login's)
    llmos login URL              the default one, kept with its token (and pinned certificate) in a
                                 0600 file under $LLMOS_CONFIG_DIR (default ~/.config/llmos)
    neither                      the daemon of this LLMOS_HOME, with its admin token

Certificates are always verified: against `--ca-cert`/$LLMOS_CA_CERT, else the certificate pinned
at login, else the local daemon's own, else the system's CAs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Login", "Target", "config_dir", "load_login", "pick", "save_login", "verify_for"]


@dataclass(frozen=True)
class Login:
    url: str
    token: str
    ca_cert: str | None = None  # a file holding the pinned certificate (PEM), or None: the system's CAs


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None
    ca_cert: str | None


def config_dir() -> Path:
    """Where `llmos login` keeps its file: $LLMOS_CONFIG_DIR, else $XDG_CONFIG_HOME/llmos, else ~/.config/llmos."""
    env = os.environ.get("LLMOS_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config").expanduser() / "llmos"


def pick(address: str | None, token: str | None, ca_cert: str | None, login: Login | None,
         local: dict[str, Any] | None, admin_token: str | None) -> Target | None:
    """The control plane to talk to (pure). `address`, `token`, `ca_cert`: given explicitly or in
    the environment; `login`: the saved login; `local`: this LLMOS_HOME's running daemon's record.
    None: nothing to talk to."""
    if address:
        same = login is not None and _same(address, login.url)
        return Target(address.rstrip("/"), token or (login.token if same and login else None),
                      ca_cert or (login.ca_cert if same and login else None))
    if login is not None:
        return Target(login.url, token or login.token, ca_cert or login.ca_cert)
    if local is not None:
        return Target(local["url"], token or admin_token, ca_cert or (local.get("tls") or {}).get("cert"))
    return None


def verify_for(info: dict[str, Any]) -> Any:
    """What httpx verifies a local daemon's certificate with: its own certificate, when it serves TLS."""
    cert = (info.get("tls") or {}).get("cert")
    if not cert:
        return True
    import ssl

    return ssl.create_default_context(cafile=cert)


def _same(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def load_login() -> Login | None:
    path = config_dir() / "login.json"
    try:
        data = json.loads(path.read_text())
        return Login(data["url"], data["token"], data.get("ca_cert"))
    except (OSError, ValueError, KeyError):
        return None


def save_login(url: str, token: str, ca_pem: bytes | None) -> Path:
    """Write the login (and the pinned certificate) readable by this user only; returns its path."""
    from llmos.paths import private_file

    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    ca_path = None
    if ca_pem is not None:
        ca_path = folder / "ca.pem"
        private_file(ca_path, ca_pem.decode())
    path = folder / "login.json"
    private_file(path, json.dumps({"url": url.rstrip("/"), "token": token,
                                   "ca_cert": str(ca_path) if ca_path else None}, indent=2) + "\n")
    return path


def forget_login() -> bool:
    """Remove the saved login; whether there was one."""
    found = False
    for name in ("login.json", "ca.pem"):
        path = config_dir() / name
        if path.exists():
            path.unlink()
            found = True
    return found
