"""The one masking function: everything written or printed goes through `Masker.mask`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

MASK = "***"

SECRET_KEY_PATTERN = re.compile(
    r"(^|_)(password|passwd|pwd|secret|token|api_key|apikey|service_role_key|anon_key|private_key|"
    r"access_key|credentials?)($|_)",
    re.IGNORECASE,
)
"""Key names treated as secret even when no spec declares them."""

_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^\s/?#]+)@(?=[^@\s/?#]*(?:[/?#\s]|$))")
"""The password runs to the *last* `@` of the URL: passwords may contain `@`."""
_KV_PASSWORD = re.compile(r"(?P<key>\b(?:password|passwd|pwd)\s*=\s*)(?P<q>['\"]?)(?P<pw>[^'\"\s]+)(?P=q)", re.I)
_BEARER = re.compile(r"(?P<key>\bBearer\s+)(?P<pw>[A-Za-z0-9._\-~+/]+=*)", re.IGNORECASE)


def is_secret_key(key: str, secret_keys: Iterable[str] = ()) -> bool:
    """Whether `key` names a secret: declared by a spec, or matching the common secret names."""
    return key in set(secret_keys) or bool(SECRET_KEY_PATTERN.search(key))


def scrub_text(text: str) -> str:
    """Hide passwords inside DSNs/URLs (`scheme://user:pw@`), `password=...` pairs and bearer tokens."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _KV_PASSWORD.sub(lambda m: f"{m['key']}{m['q']}{MASK}{m['q']}", text)
    return _BEARER.sub(lambda m: f"{m['key']}{MASK}", text)


class Masker:
    """Masks secret-keyed values, DSN passwords and every known secret value wherever it appears."""

    def __init__(self, secret_keys: Iterable[str] = (), secret_values: Iterable[str] = ()) -> None:
        self._secret_keys = frozenset(secret_keys)
        self._secret_values: set[str] = set()
        self.add_secret_values(secret_values)

    def add_secret_values(self, values: Iterable[str]) -> None:
        """Remember resolved secret values so any later text containing them is masked.

        A URL's password is remembered too, whole and percent-decoded, and so is what follows its first `@`
        (with the `@`): a client that splits such a URL at the first `@` quotes that rest as a host name.
        """
        for value in values:
            candidates = {value}
            match = _URL_PASSWORD.search(value)
            if match:
                password = match["pw"]
                for form in (password, unquote(password)):
                    candidates.add(form)
                    if "@" in form:
                        candidates.add(form.split("@", 1)[1] + "@")
            self._secret_values.update(c for c in candidates if len(c) >= 3)

    def mask(self, value: Any) -> Any:
        """Return a copy of `value` (mapping, sequence or scalar) that is safe to write or print."""
        if isinstance(value, Mapping):
            return {
                key: (MASK if is_secret_key(str(key), self._secret_keys) and item not in (None, "")
                      else self.mask(item))
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.mask(item) for item in value]
        if isinstance(value, str):
            return self._mask_text(value)
        return value

    def _mask_text(self, text: str) -> str:
        for secret in sorted(self._secret_values, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return scrub_text(text)
