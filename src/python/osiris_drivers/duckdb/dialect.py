"""DuckDB as a `Dialect`: double-quoted names that resolve case-insensitively; `replace` rebuilds the table from
the input. Column types are DuckDB's own reading of the Arrow input: the writer asks DuckDB (`DESCRIBE`)."""

from __future__ import annotations

import pyarrow as pa

from osiris_drivers.sql.dialect import Dialect


class DuckDBDialect(Dialect):
    NAME = "DuckDB"
    FAMILY = "duckdb"
    FOLDS_CASE = True
    REPLACE_KEEPS_MATCHING_TABLE = False

    def check_writable(self, schema: pa.Schema) -> None:
        """DuckDB stores every Arrow type it can scan; anything else fails the write before it changes a thing."""


DUCKDB = DuckDBDialect()
