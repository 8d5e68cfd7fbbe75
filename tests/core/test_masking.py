"""The one masking function: secret keys, DSN passwords, bearer tokens and known secret values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from osiris_core.masking import MASK, Masker, scrub_text


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
