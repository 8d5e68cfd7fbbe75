"""The `duckdb` family: `connection.py`, `dialect.py` and the components `duckdb.processor` and `duckdb.writer`."""
