"""Connection hosts a cloud sandbox cannot reach: this machine, its private networks, and Unix sockets.

An E2B sandbox runs in E2B's cloud: `127.0.0.1` there is the sandbox itself, and this machine's private networks
(10/8, 172.16/12, 192.168/16, link-local, CGNAT, IPv6 ULA, ...) and Unix sockets are out of its reach. A pipeline
whose connections point there works locally and in the local sandbox, then fails on E2B after a sandbox was paid
for. `check_public_hosts` refuses it up front, naming the connection, the field and the host. It is the one check
used for `--e2b` and for the local sandbox's `--e2b-like` mode (`SandboxOptions.reach_private_hosts`).

Every field that can hold a host is looked at: `host`/`hostaddr` (and `*_host`, comma-separated lists as libpq
takes them), `unix_socket`/`socket` fields, every value that is a URL (`url`, `sql_url`, `pg_dsn`, ...: the host of
its authority, libpq's multi-host lists, and `host`/`hostaddr` query parameters) and libpq keyword strings in
`*dsn` fields (`host=... dbname=...`). A name is resolved here: it is refused when any address it resolves to is
not a public one (a sandbox may get the same answer); a name that does not resolve here is left to the run.
Messages name the host, never the rest of a value (a DSN carries a password).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from osiris_core.errors import InputError

OPT_OUT_FLAG = "--e2b-allow-private-hosts"
HOST_KEYS = frozenset({"host", "hostaddr", "hostname"})
SOCKET_KEYS = frozenset({"unix_socket", "socket"})
_DSN_PAIR = re.compile(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")
_SOCKET = "a Unix socket of this machine"


@dataclass(frozen=True)
class HostField:
    """A host named by a connection field; `host` is "" when the field means a local socket without naming one."""

    field: str
    host: str


def _split_hosts(value: str) -> Iterator[str]:
    """libpq's comma-separated host lists; `[v6]:port` and `name:port` lose their port."""
    for raw in value.split(","):
        item = raw.strip()
        if item.startswith("["):
            yield item[1:].partition("]")[0]
        elif item.count(":") == 1:
            yield item.partition(":")[0]
        else:
            yield item


def _url_hosts(key: str, value: str) -> Iterator[HostField]:
    parts = urlsplit(value.strip())
    authority = parts.netloc.rpartition("@")[2]  # after any user:password@
    hosts = [unquote(h) for h in _split_hosts(authority)]
    query = parse_qs(parts.query)
    named = [h for k in ("host", "hostaddr") for v in query.get(k, []) for h in _split_hosts(v)]  # decoded
    if not any(hosts) and not named and parts.scheme.lower().startswith(("postgres", "mysql", "mariadb")):
        yield HostField(key, "")  # libpq and MySQL clients connect to a local socket when the URL names no host
    for host in [*hosts, *named]:
        if host:
            yield HostField(key, host)


def _dsn_hosts(key: str, value: str) -> Iterator[HostField]:
    for name, raw in _DSN_PAIR.findall(value):
        if name.lower() in ("host", "hostaddr"):
            text = raw[1:-1].replace("\\'", "'") if raw.startswith("'") else raw
            for host in _split_hosts(text):
                yield HostField(key, host)


def connection_hosts(fields: Mapping[str, Any]) -> list[HostField]:
    """Every host (or local socket) the connection's fields name."""
    found: list[HostField] = []
    for key, value in fields.items():
        if not isinstance(value, str) or not value.strip():
            continue
        lowered = key.lower()
        if lowered in SOCKET_KEYS:
            found.append(HostField(key, value if value.startswith("/") else f"/{value}"))
        elif "://" in value:
            found.extend(_url_hosts(key, value))
        elif lowered in HOST_KEYS or lowered.endswith("_host"):
            found.extend(HostField(key, host) for host in _split_hosts(value) if host)
        elif lowered.endswith("dsn"):
            found.extend(_dsn_hosts(key, value))
    return found


def _address_kind(text: str) -> str | None:
    """Why an IP address is out of a cloud sandbox's reach; None for a public one."""
    address = ipaddress.ip_address(text.partition("%")[0])  # an IPv6 zone (fe80::1%eth0) names a local link
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_private:
        return "a private-network address"
    if not address.is_global:
        return "not a public address"
    return None


def unreachable_reason(host: str) -> str | None:
    """Why a cloud sandbox cannot reach `host` (a name, an address, or a socket path); None when it may."""
    if not host or host.startswith(("/", "@")):
        return _SOCKET
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return "a name of this machine"
    try:
        return _address_kind(name)
    except ValueError:
        pass  # a name: what does it resolve to?
    try:
        answers = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None  # not resolvable here: the run will say whether the sandbox can
    for *_, sockaddr in answers:
        kind = _address_kind(str(sockaddr[0]))
        if kind is not None:
            return f"resolving to {sockaddr[0]}, {kind}"
    return None


def check_public_hosts(reference: str, fields: Mapping[str, Any]) -> None:
    """Refuse (`InputError`) a connection any of whose hosts an E2B sandbox cannot reach."""
    for found in connection_hosts(fields):
        reason = unreachable_reason(found.host)
        if reason is None:
            continue
        what = f"{found.host!r}, {reason}," if found.host else f"no host (so {_SOCKET}),"
        raise InputError(
            f"connection {reference}: field '{found.field}' names {what} which an E2B sandbox cannot reach",
            hint=f"use a host the sandbox can reach over the internet (a public endpoint or a tunnel), or pass "
                 f"{OPT_OUT_FLAG} if your template reaches it (e.g. over a VPN)")
