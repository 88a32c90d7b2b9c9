"""`llmos login`: check a URL, its certificate and a token against the control plane, then save them."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llmos.control._errors import ControlError

__all__ = ["log_in", "same_fingerprint", "server_certificate"]


def same_fingerprint(given: str, actual: str) -> bool:
    """Whether two SHA-256 fingerprints match, however written (AB:CD..., abcd..., spaces)."""
    def norm(text: str) -> str:
        return "".join(c for c in text.lower() if c in "0123456789abcdef")

    return len(norm(given)) == 64 and norm(given) == norm(actual)


def server_certificate(url: str) -> bytes:
    """The certificate the server at `url` presents (PEM), unverified: only to compare its fingerprint."""
    parts = urlsplit(url)
    try:
        return ssl.get_server_certificate((parts.hostname or "", parts.port or 443), timeout=10).encode()
    except OSError as exc:
        raise ControlError(f"cannot reach {url} to read its certificate ({exc}).",
                           hint="Check the URL and that the control plane listens there (llmos up --host).") from None


def log_in(url: str, token: str, ca_pem: bytes | None, fingerprint: str | None) -> tuple[dict[str, Any], Path]:
    """Pin the certificate (by `fingerprint` or `ca_pem`), ask the control plane who `token` is,
    save the login; returns (who, the login file)."""
    from llmos.control._client import Client
    from llmos.control._remote import config_dir, save_login
    from llmos.control._tls import fingerprint as fingerprint_of

    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ControlError(f"{url!r} is not a URL.", hint="e.g. llmos login https://gpu-box:8470")
    if not token:
        raise ControlError("no token given.", hint="Pipe it in (llmos login URL < token.txt) or use --token-file.")
    if fingerprint is not None:
        if not url.startswith("https://"):
            raise ControlError("--fingerprint needs an https:// URL.", hint=f"Use https://{url.split('://', 1)[1]}")
        presented = server_certificate(url)
        actual = fingerprint_of(presented)
        if not same_fingerprint(fingerprint, actual):
            raise ControlError(f"the certificate of {url} has the fingerprint {actual}, not {fingerprint}: "
                               "it is not the control plane you meant, or someone is in between.",
                               hint="Compare with the fingerprint llmos up printed (also in llmos status on that "
                                    "machine); log in only when they match.")
        ca_pem = presented
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    check = folder / "ca.pem.check"
    if ca_pem is not None:
        from llmos.paths import private_file

        private_file(check, ca_pem.decode())
    try:
        with Client(url, token, ca_cert=str(check) if ca_pem is not None else None) as client:
            who = client.status()["you"]
    finally:
        check.unlink(missing_ok=True)
    return who, save_login(url, token, ca_pem)
