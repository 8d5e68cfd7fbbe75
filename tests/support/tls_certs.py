"""Test support: self-signed TLS certificates made with the `openssl` command, and server contexts for them."""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate (its own CA: trust `cert` to verify it) and its private key."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def self_signed(directory: Path, name: str, *, common_name: str, alt_names: str) -> Certificate:
    """`openssl req -x509` for `common_name` with subjectAltName `alt_names` (e.g. `DNS:localhost,IP:127.0.0.1`)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(key),
                    "-out", str(cert), "-subj", f"/CN={common_name}", "-addext", f"subjectAltName={alt_names}"],
                   check=True, capture_output=True)
    return Certificate(cert, key)
