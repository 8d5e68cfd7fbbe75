"""The one masking function: secret keys, DSN passwords, bearer tokens and known secret values."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from osiris_core.masking import MASK, Masker, masked_logging, scrub_text


def test_masks_secret_keys_recursively() -> None:
    masker = Masker(secret_keys={"pg_dsn"})
    masked = masker.mask({"host": "h", "password": "pw1", "nested": [{"service_role_key": "k"}],
                          "pg_dsn": "anything", "token": None})
    assert masked == {"host": "h", "password": MASK, "nested": [{"service_role_key": MASK}], "pg_dsn": MASK,
                      "token": None}


def test_scrubs_dsn_passwords_and_bearer_tokens() -> None:
    text = "connect postgresql://user:p%40ss@db:5432/x failed; Authorization: Bearer abc.def-ghi; password='zz'"
    scrubbed = scrub_text(text)
    assert "p%40ss" not in scrubbed and "abc.def-ghi" not in scrubbed and "zz" not in scrubbed
    assert "postgresql://user:***@db:5432/x" in scrubbed


def test_known_secret_values_are_masked_anywhere() -> None:
    masker = Masker()
    masker.add_secret_values(["s3cr3t-value"])
    assert masker.mask({"error": "login failed for s3cr3t-value!"}) == {"error": f"login failed for {MASK}!"}


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=4, max_size=40))
def test_any_registered_secret_disappears(secret: str) -> None:
    masker = Masker()
    masker.add_secret_values([secret])
    assert secret not in masker.mask(f"prefix {secret} suffix")


def test_a_password_with_at_signs_is_masked_in_pieces_too() -> None:
    masker = Masker()
    masker.add_secret_values(["postgresql://postgres:Tr0ub4dor@Horse&Battery@127.0.0.1:5432/db"])
    # libpq cuts such a URL at the first "@" and quotes the rest of the password as a host name.
    text = masker.mask('could not translate host name "Horse&Battery@127.0.0.1" to address')
    assert "Horse&Battery@" not in text
    assert scrub_text("dsn postgresql://u:p@ss@db:5432/x failed") == "dsn postgresql://u:***@db:5432/x failed"


def test_urls_without_passwords_and_common_words_survive() -> None:
    assert scrub_text("https://api.example.com:443/users/bob@example.com") == \
        "https://api.example.com:443/users/bob@example.com"
    assert scrub_text('{"dsn":"postgresql://u:pw@h/db","email":"me@x.com"}') == \
        '{"dsn":"postgresql://u:***@h/db","email":"me@x.com"}'
    masker = Masker()
    masker.add_secret_values(["postgresql://app:admin@2024@db.internal:5432/sales"])
    assert masker.mask("read 2024 rows as admin") == "read 2024 rows as admin"
    assert "2024@db" not in masker.mask('could not translate host name "2024@db.internal"')


# ------------------------------------------------------------------------------ credentials inside URLs

SECRET = "tok3n-Zq81-secret"


def test_credential_parameters_of_any_url_are_masked() -> None:
    cases = {
        f"https://x.supabase.co/pg/query?apikey={SECRET}": "https://x.supabase.co/pg/query?apikey=***",
        f"POST https://h/sql?a=1&access_token={SECRET}&b=2 failed":
            "POST https://h/sql?a=1&access_token=***&b=2 failed",
        f"https://bucket.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature={SECRET}":
            "https://bucket.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***",
        f"https://acct.blob.core.windows.net/c/b?sv=2024&sig={SECRET}":
            "https://acct.blob.core.windows.net/c/b?sv=2024&sig=***",
        f"https://maps.example.com/api?key={SECRET}": "https://maps.example.com/api?key=***",
        f"https://app/cb#id_token={SECRET}&state=ok": "https://app/cb#id_token=***&state=ok",
        f"https://u:{SECRET}@h/p?clientSecret={SECRET}": "https://u:***@h/p?clientSecret=***",
    }
    for text, expected in cases.items():
        assert scrub_text(text) == expected
    # ordinary parameters and SQL stay readable
    for text in ("https://h/rest/v1/t?select=*&limit=10&columns=%22a%22", "SELECT * FROM a JOIN b ON a.key=b.key",
                 "WHERE token_count=3"):
        assert scrub_text(text) == text


def test_any_url_valued_field_is_masked_not_just_sql_url() -> None:
    masked = Masker().mask({"endpoint": f"https://h/x?token={SECRET}", "nested": [f"see https://h/?apiKey={SECRET}"]})
    assert SECRET not in str(masked)
    assert masked["endpoint"] == "https://h/x?token=***"


def test_url_credentials_of_a_connection_are_remembered_bare_and_decoded() -> None:
    masker = Masker(secret_keys={"service_role_key"})
    masker.add_connection_fields({"url": "https://h", "sql_url": "https://h/pg?apikey=ab%2Fc%2B9xyz&x=1",
                                  "service_role_key": "srk-value"})
    text = masker.mask("server said: invalid key ab/c+9xyz (ab%2Fc%2B9xyz), srk-value")
    assert "ab/c+9xyz" not in text and "ab%2Fc%2B9xyz" not in text and "srk-value" not in text


@given(st.sampled_from(["apikey", "api_key", "token", "access_token", "X-Amz-Signature", "sig", "password",
                        "client_secret", "refreshToken", "jwt"]),
       st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%", min_size=4,
               max_size=40))
def test_any_credential_parameter_value_disappears(name: str, value: str) -> None:
    scrubbed = scrub_text(f"GET https://h/p?x=1&{name}={value} -> 401")
    assert f"{name}={value}" not in scrubbed
    assert f"{name}=***" in scrubbed


# ------------------------------------------------------------------------------------------- logging


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def collect() -> Iterator[_Collect]:
    handler = _Collect()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def test_records_of_osiris_and_driver_loggers_are_masked_before_any_handler(collect: _Collect) -> None:
    password = "-".join(["pw", "Kx91", "zz"])  # built, so the traceback's source lines do not hold it
    masker = Masker()
    masker.add_secret_values([password])
    factory = logging.getLogRecordFactory()
    with masked_logging(masker):
        logging.getLogger("osiris.run.load").warning("could not drop %s: %s", "t", f"login {password} refused")
        logging.getLogger("supabase").info("calling %s", f"https://h/pg?apikey={SECRET}")
        try:
            raise ValueError(f"postgresql://u:{password}@h/db unreachable (token {password})")
        except ValueError:
            logging.getLogger("e2b").exception("sandbox failed")
        logging.getLogger("osiris").warning("stack", stack_info=True)
    assert logging.getLogRecordFactory() is factory  # restored when the last masker leaves
    text = "\n".join(collect.lines)
    assert password not in text and SECRET not in text
    assert "could not drop t: login *** refused" in text
    assert "ValueError: postgresql://u:***@h/db unreachable (token ***)" in text  # the traceback is kept, masked


def test_httpx_request_lines_are_masked(collect: _Collect) -> None:
    import httpx

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with masked_logging(Masker()):
            httpx.get(f"http://127.0.0.1:{server.server_address[1]}/rest/v1/t?apikey={SECRET}&select=*")
    finally:
        server.shutdown()
        server.server_close()
    lines = [line for line in collect.lines if "HTTP Request" in line]
    assert lines and "apikey=***&select=*" in lines[0]
    assert SECRET not in "\n".join(collect.lines)
