"""Who may talk to the sandbox server: the access token, the Host and Origin checks.

Every request is checked before anything else happens (before its body is read, before a
process starts or a file is written):

1. ``Host`` must name this server the way a local, non-browser client does: ``localhost``,
   an address in ``127.0.0.0/8`` or ``::1`` (or the bound address when the server was
   explicitly bound to another one; any IP literal for a wildcard bind), with the
   server's port. A DNS name pointing at the machine is refused, which defeats DNS
   rebinding.
2. ``Origin`` (or a ``Sec-Fetch-Site`` other than ``none``) means a web browser sent the
   request on behalf of some page: refused, whatever the page.
3. Except for ``GET /health``, the request must carry the server's access token, the way
   envd expects it: the ``X-Access-Token`` header (what the ``e2b`` SDK sends on every
   request of a sandbox created with an ``envd_access_token``), or, for ``/files`` only, a
   v1 ``signature`` query parameter made from it (``Sandbox.download_url`` /
   ``upload_url``, optionally with ``signature_expiration``). Tokens and signatures are
   compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

TOKEN_HEADER = "x-access-token"
"""The header envd reads the access token from (the SDK sends ``X-Access-Token``)."""

TOKEN_BYTES = 32
"""Random bytes in a generated token (``secrets.token_urlsafe``)."""


def new_token() -> str:
    """A fresh random access token (URL-safe, 43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a name) only reaches this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("", "0.0.0.0", "::")


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``("127.0.0.1", 8080)`` for ``127.0.0.1:8080``, ``("::1", None)`` for ``[::1]``; None if malformed."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, sep, port_text_raw = value.rpartition(":")
        if not sep:
            name, port_text = value, None
        else:
            port_text = port_text_raw
        if ":" in name:
            return None
    if port_text is None:
        return name.lower(), None
    if not port_text.isdigit() or len(port_text) > 5:
        return None
    return name.lower(), int(port_text)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: an HTTP status and a one-line message (never the token)."""

    status: int
    message: str


@dataclass(frozen=True)
class AccessPolicy:
    """The checks of this module for one server: its token, bound address and port."""

    token: str
    bind_host: str
    port: int

    def _host_allowed(self, name: str) -> bool:
        if is_loopback(name):
            return True
        if is_wildcard(self.bind_host):
            return _is_ip(name)  # an IP literal cannot be rebound to another site
        try:
            return ipaddress.ip_address(name) == ipaddress.ip_address(self.bind_host.strip("[]"))
        except ValueError:
            return name == self.bind_host.lower()

    def check_origin(self, headers: dict[str, str]) -> Refusal | None:
        """Refuse browsers and requests addressed to a name that is not this server."""
        if "origin" in headers:
            return Refusal(403, "requests from web pages (with an Origin header) are refused")
        if headers.get("sec-fetch-site", "none").lower() != "none":
            return Refusal(403, "requests from web pages (Sec-Fetch-Site) are refused")
        raw = headers.get("host")
        if raw is None:
            return Refusal(403, "the Host header is missing")
        parsed = _split_host(raw.strip())
        if parsed is None:
            return Refusal(403, "malformed Host header")
        name, port = parsed
        if (port if port is not None else 80) != self.port or not self._host_allowed(name):
            return Refusal(403, "the Host header does not name this server; connect to 127.0.0.1 and its port")
        return None

    def check_token(
        self, headers: dict[str, str], duplicated: bool, method: str, path: str, query_string: str
    ) -> Refusal | None:
        """Refuse a request without the access token (or, on ``/files``, a valid signature)."""
        if duplicated:
            return Refusal(401, "more than one access token header")
        given = headers.get(TOKEN_HEADER)
        if given is not None:
            if hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode()):
                return None
            return Refusal(401, "invalid access token")
        if path == "/files":
            query = parse_qs(query_string, keep_blank_values=True)
            if "signature" in query:
                return self._check_signature(query, method)
        return Refusal(401, "missing access token (send it in the X-Access-Token header)")

    def _check_signature(self, query: dict[str, list[str]], method: str) -> Refusal | None:
        def one(key: str) -> str | None:
            values = query.get(key)
            return values[0] if values else None

        signature = one("signature") or ""
        operation = "write" if method == "POST" else "read"
        expiration_text = one("signature_expiration")
        expiration: int | None = None
        if expiration_text is not None:
            if not expiration_text.isdigit():
                return Refusal(401, "invalid signature expiration")
            expiration = int(expiration_text)
            if expiration < time.time():
                return Refusal(401, "the signature has expired")
        expected = file_signature(one("path") or "", operation, one("username") or "", self.token, expiration)
        if hmac.compare_digest(signature.encode("utf-8", "replace"), expected.encode()):
            return None
        return Refusal(401, "invalid signature")


def file_signature(path: str, operation: str, username: str, token: str, expiration: int | None) -> str:
    """envd's v1 file URL signature (the same as ``e2b.sandbox.signature.get_signature``)."""
    raw = f"{path}:{operation}:{username}:{token}"
    if expiration is not None:
        raw += f":{expiration}"
    digest = hashlib.sha256(raw.encode("utf-8")).digest()
    return "v1_" + base64.b64encode(digest).rstrip(b"=").decode("ascii")
