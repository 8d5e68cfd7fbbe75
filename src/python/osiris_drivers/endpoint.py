"""Where a database connection goes and how it is protected: host names that cannot smuggle connection
parameters, and the TLS modes the database families share."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator

SslMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]
"""libpq's names, used for every family: disable = never TLS; prefer = TLS when the server offers it (no
certificate check); require = TLS or fail (no certificate check); verify-ca = TLS with a certificate signed by a
trusted CA; verify-full = verify-ca and the certificate names the host."""
ENCRYPTED_MODES: frozenset[str] = frozenset({"require", "verify-ca", "verify-full"})
"""Modes that promise an encrypted connection: a client that cannot encrypt must refuse them."""

_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?")
_SOCKET_DIR = re.compile(r"/[A-Za-z0-9_./-]*")


def check_host(host: str, *, socket_dirs: bool = False) -> str:
    """`host` if it is a host name, an IPv4/IPv6 address (or, with `socket_dirs`, an absolute Unix-socket
    directory); anything else could carry extra connection parameters into a DSN or URL."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if _HOST_NAME.fullmatch(host) or (socket_dirs and _SOCKET_DIR.fullmatch(host)):
        return host
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        raise ValueError(f"'{host}' is not a host name or IP address"
                         + (" or socket directory" if socket_dirs else "")) from None
    return text


def _host(host: str) -> str:
    return check_host(host)


def _host_or_socket(host: str) -> str:
    return check_host(host, socket_dirs=True)


HostName = Annotated[str, AfterValidator(_host)]
"""A connection field holding a host name or IP address."""
HostOrSocket = Annotated[str, AfterValidator(_host_or_socket)]
"""A host name, IP address or absolute Unix-socket directory (libpq's `host`)."""
