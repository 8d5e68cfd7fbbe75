"""Config types shared by the CSV components."""

from __future__ import annotations

import codecs
from typing import Annotated

from pydantic import AfterValidator, Field


def _known_encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}") from None
    return value


Encoding = Annotated[str, AfterValidator(_known_encoding)]
"""A text encoding Python knows (utf-8, latin-1, cp1252, utf-16, …)."""
OneChar = Annotated[str, Field(min_length=1, max_length=1)]
