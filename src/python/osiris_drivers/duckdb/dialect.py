"""DuckDB as a `Dialect`: double-quoted names that resolve case-insensitively; `replace` rebuilds the table from
the input. Column types are DuckDB's own reading of the Arrow input: the writer asks DuckDB (`DESCRIBE`). No
partial indexes; the writer's own time columns are TIMESTAMP in UTC."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from osiris_drivers.sql.dialect import Dialect, UnsupportedType

MAX_DECIMAL_DIGITS = 38


class DuckDBDialect(Dialect):
    NAME = "DuckDB"
    FAMILY = "duckdb"
    FOLDS_CASE = True
    REPLACE_KEEPS_MATCHING_TABLE = False
    PARTIAL_UNIQUE_INDEX = False
    TIMESTAMP_TYPE = "TIMESTAMP"
    """UTC without a zone (a TIMESTAMPTZ reads back through pytz)."""

    def timestamp_sql(self, value: dt.datetime) -> str:
        return f"CAST('{value.strftime('%Y-%m-%d %H:%M:%S.%f')}' AS TIMESTAMP)"

    def check_writable(self, schema: pa.Schema) -> None:
        """DuckDB stores every Arrow type it can scan; a decimal wider than its DECIMAL (38 digits, e.g. MySQL's
        DECIMAL(65,30)) it cannot, and is named here (DuckDB's own error does not say which column)."""
        for field in schema:
            if pa.types.is_decimal(field.type) and field.type.precision > MAX_DECIMAL_DIGITS:
                raise UnsupportedType(f"column '{field.name}': {field.type} has more digits than DuckDB's DECIMAL "
                                      f"holds ({MAX_DECIMAL_DIGITS}); read it as DECIMAL(38,s) or as text with a "
                                      "CAST in the source query")


DUCKDB = DuckDBDialect()
