"""The one masking function: everything written or printed goes through `Masker.mask`.

Log records are masked too: while `masked_logging` is active, every record any logger creates (Osiris's own,
httpx, supabase, e2b, …) has its message, arguments, exception text and stack text masked before a handler
or a file can see it.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
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
_URL_PARAM = re.compile(r"(?P<key>[?&#](?P<name>[A-Za-z][A-Za-z0-9_.\-]*)=)(?P<value>[^&#\s\"'<>]+)")
"""A `name=value` pair of a URL's query string or fragment (`?a=1&b=2`, `#access_token=…`)."""

SECRET_PARAM_WORDS = frozenset({
    "key", "apikey", "token", "secret", "password", "passwd", "pwd", "pass", "signature", "sig", "auth",
    "authorization", "credential", "credentials", "jwt", "sas", "session", "sessionid",
})
"""A URL parameter whose name has one of these words (`apikey`, `access_token`, `X-Amz-Signature`, `sig`) is
a secret."""
_SECRET_PARAM_ENDINGS = ("key", "token", "secret", "password", "passwd", "signature", "credential", "credentials")
_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret_key(key: str, secret_keys: Iterable[str] = ()) -> bool:
    """Whether `key` names a secret: declared by a spec, or matching the common secret names."""
    return key in set(secret_keys) or bool(SECRET_KEY_PATTERN.search(key))


def is_secret_param(name: str) -> bool:
    """Whether a URL query/fragment parameter called `name` carries a credential."""
    words = {word.lower() for word in _NAME_WORDS.findall(name)}
    collapsed = re.sub(r"[^a-z0-9]", "", name.lower())
    return bool(words & SECRET_PARAM_WORDS) or collapsed.endswith(_SECRET_PARAM_ENDINGS)


def _mask_param(match: re.Match[str]) -> str:
    return f"{match['key']}{MASK}" if is_secret_param(match["name"]) else match[0]


def scrub_text(text: str) -> str:
    """Hide passwords inside DSNs/URLs (`scheme://user:pw@`), credential parameters of URLs (`?apikey=…`,
    `&access_token=…`, `X-Amz-Signature=…`), `password=...` pairs and bearer tokens."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _URL_PARAM.sub(_mask_param, text)
    text = _KV_PASSWORD.sub(lambda m: f"{m['key']}{m['q']}{MASK}{m['q']}", text)
    return _BEARER.sub(lambda m: f"{m['key']}{MASK}", text)


def url_secrets(text: str) -> set[str]:
    """The credentials embedded in the URLs of `text`: userinfo passwords and credential parameters, each as
    written and percent-decoded."""
    found: set[str] = set()
    for match in _URL_PASSWORD.finditer(text):
        found.add(match["pw"])
    for match in _URL_PARAM.finditer(text):
        if is_secret_param(match["name"]):
            found.add(match["value"])
    return found | {unquote(value) for value in found} | {unquote(value.replace("+", " ")) for value in found}


class Masker:
    """Masks secret-keyed values, DSN passwords and every known secret value wherever it appears."""

    def __init__(self, secret_keys: Iterable[str] = (), secret_values: Iterable[str] = ()) -> None:
        self._secret_keys = frozenset(secret_keys)
        self._secret_values: set[str] = set()
        self._lock = threading.Lock()
        self.add_secret_values(secret_values)

    def add_secret_values(self, values: Iterable[str]) -> None:
        """Remember resolved secret values so any later text containing them is masked.

        A URL's credentials (its password, its `apikey=`-like parameters) are remembered too, as written and
        percent-decoded, and so is what follows the first `@` of a password (with the `@`): a client that
        splits such a URL at the first `@` quotes that rest as a host name.
        """
        candidates: set[str] = set()
        for value in values:
            candidates.add(value)
            for secret in url_secrets(value):
                candidates.add(secret)
                if "@" in secret:
                    candidates.add(secret.split("@", 1)[1] + "@")
        with self._lock:
            self._secret_values.update(c for c in candidates if len(c) >= 3)

    def add_connection_fields(self, fields: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> None:
        """Remember a resolved connection's secrets: secret-keyed values whole, and the credentials inside
        any other value that holds a URL (`sql_url: https://…?apikey=…`, `url: https://user:pw@…`)."""
        keys = frozenset(secret_keys) | self._secret_keys
        whole = [str(v) for k, v in fields.items() if v not in (None, "") and is_secret_key(str(k), keys)]
        embedded = [s for k, v in fields.items() if isinstance(v, str) and not is_secret_key(str(k), keys)
                    for s in url_secrets(v)]
        self.add_secret_values([*whole, *embedded])

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
        with self._lock:
            secrets = sorted(self._secret_values, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return scrub_text(text)


# ------------------------------------------------------------------------------------------------ logging


class _LogMasking:
    """The maskers of the runs in progress and the record factory that was in place before them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.maskers: list[Masker] = []
        self.base: Callable[..., logging.LogRecord] | None = None

    def text(self, text: str) -> str:
        with self.lock:
            maskers = tuple(self.maskers)
        for masker in maskers:
            text = masker.mask(text)
        return scrub_text(text)

    def factory(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        base = self.base or logging.LogRecord  # None only in the instant another thread uninstalls this
        return mask_log_record(base(*args, **kwargs))


_LOGS = _LogMasking()


def mask_log_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask a record in place: its message (arguments merged in), exception and stack text."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep what there is, masked
        message = f"{record.msg} {record.args}"
    record.msg, record.args = _LOGS.text(message), None
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = _LOGS.text("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        record.exc_info = None  # handlers format exc_text, never the raw exception
    elif record.exc_text:
        record.exc_text = _LOGS.text(record.exc_text)
    if record.stack_info:
        record.stack_info = _LOGS.text(record.stack_info)
    return record


@contextmanager
def masked_logging(masker: Masker) -> Iterator[None]:
    """While active, every log record of every logger is masked by `masker` (and by pattern) when it is
    created, before any handler, filter or file sees it. Nests and overlaps across threads."""
    with _LOGS.lock:
        if _LOGS.base is None:
            _LOGS.base = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_LOGS.factory)
        _LOGS.maskers.append(masker)
    try:
        yield
    finally:
        with _LOGS.lock:
            _LOGS.maskers.remove(masker)
            if not _LOGS.maskers and logging.getLogRecordFactory() == _LOGS.factory:
                logging.setLogRecordFactory(_LOGS.base)
                _LOGS.base = None
