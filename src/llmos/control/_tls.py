"""HTTPS for the control API: bound beyond loopback it serves TLS, never plain HTTP by accident.

`serving_plan` decides (pure): loopback → HTTP; another address → the certificate given, else a
self-signed one made here (`self_signed`, under LLMOS_HOME/control/tls, key 0600) whose SHA-256
fingerprint the daemon prints so that a client can pin it (`llmos login URL --fingerprint ...`);
`insecure_http` → HTTP with a warning.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from llmos.errors import LlmosError

__all__ = ["Serving", "fingerprint", "is_loopback", "self_signed", "serving_plan"]

_VALID_DAYS = 825  # the longest validity clients accept for a server certificate


@dataclass(frozen=True)
class Serving:
    scheme: str  # http | https
    cert: str | None = None
    key: str | None = None
    self_signed: bool = False
    warning: str | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serving_plan(host: str, cert: str | None, key: str | None, insecure_http: bool) -> Serving:
    """How the API serves on `host`; raises LlmosError for a half-given certificate."""
    if bool(cert) != bool(key):
        raise LlmosError("tls_cert and tls_key go together: one was given without the other.",
                         hint="Give both (llmos up --tls-cert CERT.pem --tls-key KEY.pem), or neither.")
    if cert and key:
        return Serving("https", cert, key)
    if is_loopback(host):
        return Serving("http")
    if insecure_http:
        return Serving("http", warning=f"WARNING: serving plain HTTP on {host} (--insecure-http): tokens cross the "
                                       "network readable by anyone on the path. Drop --insecure-http to serve HTTPS.")
    return Serving("https", self_signed=True)


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER form, as AB:CD:... (what browsers and openssl show)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    """(cert, key) of a self-signed certificate for `host` (and this machine's names and addresses),
    made once and kept; made again when it no longer names every address or nears its end."""
    from cryptography import x509

    folder.mkdir(mode=0o700, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    names = _names(host)
    if cert_path.is_file() and key_path.is_file():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        have = {str(n) for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                .get_values_for_type(x509.IPAddress)}
        have |= set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                    .get_values_for_type(x509.DNSName))
        left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
        if names <= have and left > datetime.timedelta(days=30):
            return cert_path, key_path
    _make(cert_path, key_path, names)
    return cert_path, key_path


def _names(host: str) -> set[str]:
    names = {"localhost", "127.0.0.1", "::1", socket.gethostname()}
    if host in ("0.0.0.0", "::", ""):
        names |= _addresses()
    else:
        names.add(host)
    return names


def _addresses() -> set[str]:
    import psutil

    return {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family in (socket.AF_INET, socket.AF_INET6)}


def _make(cert_path: Path, key_path: Path, names: set[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"llmos control plane on {socket.gethostname()}")])
    sans: list[x509.GeneralName] = []
    for name in sorted(names):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _private(key_path, pem_key)
    _private(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def _private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
