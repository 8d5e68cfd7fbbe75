"""`mysql.extractor`: a MySQL/MariaDB table or query, streamed as Arrow record batches through ConnectorX.

pymysql first describes the result (`… LIMIT 0`: fast, and it fails fast with a clear error on bad credentials,
an unreachable host or an unknown table); ConnectorX then streams the rows, and each batch is cast to the
types `osiris_drivers.mysql.types` derives from that description.

ConnectorX's MySQL client has no TLS, so a connection whose `ssl_mode` promises encryption (require,
verify-ca, verify-full) is refused rather than streamed in plain text.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pydantic import Field

from osiris_core.driver import MAIN_OUTPUT, Driver, StepContext, StepInputs, StepOutputs
from osiris_core.errors import DriverError
from osiris_drivers.connectorx_reader import Describe, guarded_batches, open_stream
from osiris_drivers.endpoint import ENCRYPTED_MODES
from osiris_drivers.keyset_pages import KEY_ALIAS, keyset_pages
from osiris_drivers.mysql.connection import (
    ER_PARSE,
    SESSION_TIME_ZONE,
    MySQLSettings,
    connect,
    connectorx_url,
    error_code,
    explain,
    qualified,
    quote_ident,
    split_table,
)
from osiris_drivers.mysql.types import ResultColumn, arrow_type, cast_column

BATCH_ROWS = 65_536
"""Rows per record batch ConnectorX produces."""
PAGE_ROWS = 65_536
"""Rows per keyset page when reading a table with an integer primary key.

ConnectorX's stream reads ahead without limit when its consumer is slower (a database writer), so a whole
table read as one stream can fill memory. Reading the table in primary-key pages bounds that to one page.
"""
PK_ALIAS = KEY_ALIAS


def _page_rows(limit: int | None) -> int:
    """A page never asks for more rows than the step's `limit`."""
    return PAGE_ROWS if limit is None else max(1, min(PAGE_ROWS, limit))
PROBE_ALIAS = "__osiris_probe"
TEXT_ALIAS = "__osiris_q"


class MySQLExtractorConfig(MySQLSettings):
    query: str | None = Field(default=None, min_length=1)
    table: str | None = Field(default=None, min_length=1, pattern=r"^[^.]+(\.[^.]+)?$")
    columns: list[str] | None = Field(default=None, min_length=1)
    limit: int | None = Field(default=None, ge=0)


def select_sql(step_id: str, config: MySQLExtractorConfig) -> str:
    """The SELECT to run: the query as given (without a trailing `;`), or one built from table/columns/limit."""
    if (config.query is None) == (config.table is None):
        raise DriverError("set exactly one of `query` and `table`", step_id=step_id,
                          hint="query: SELECT …, or table: name (with optional columns and limit)")
    if config.query is not None:
        if config.columns is not None or config.limit is not None:
            raise DriverError("`columns` and `limit` apply to `table` only", step_id=step_id,
                              hint="select the columns and add LIMIT in the query itself")
        return config.query.strip().rstrip(";").strip()
    database, table = split_table(config.table or "", config.database)
    columns = ", ".join(quote_ident(c) for c in config.columns) if config.columns else "*"
    limit = f" LIMIT {config.limit}" if config.limit is not None else ""
    return f"SELECT {columns} FROM {qualified(database, table)}{limit}"


def text_transfer_sql(sql: str, columns: list[ResultColumn]) -> str:
    """`sql` wrapped so the columns ConnectorX would round arrive as exact text (`CAST(c AS CHAR)`)."""
    selected = ", ".join(f"CAST({quote_ident(c.name)} AS CHAR) AS {quote_ident(c.name)}" if c.as_text
                         else quote_ident(c.name) for c in columns)
    return f"SELECT {selected} FROM (\n{sql}\n) AS {TEXT_ALIAS}"


class MySQLExtractor(Driver[MySQLExtractorConfig]):
    config_model = MySQLExtractorConfig

    def run(self, *, step_id: str, config: MySQLExtractorConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        if config.ssl_mode in ENCRYPTED_MODES:
            raise DriverError(f"ssl_mode {config.ssl_mode} cannot be honoured: the rows stream through ConnectorX, "
                              "whose MySQL client has no TLS", step_id=step_id,
                              hint="reach the server through an encrypted tunnel (ssh -L, stunnel) and set ssl_mode: "
                                   "disable for it, or accept ssl_mode: prefer (the row stream is then unencrypted)")
        sql = select_sql(step_id, config)
        columns = self._describe(step_id, config, sql)
        as_text = any(c.as_text for c in columns)
        if as_text:
            sql = text_transfer_sql(sql, columns)
        key = self._integer_primary_key(step_id, config) if config.table is not None and not as_text else None
        reader = self._open(step_id, config, self._page_sql(config, key, None) if key else sql)
        if len(reader.schema) != len(columns) + (1 if key else 0):
            raise DriverError(f"ConnectorX returned {len(reader.schema)} columns where MySQL described "
                              f"{len(columns)}", step_id=step_id, hint="give every column a distinct name")
        targets = [arrow_type(c) for c in columns]
        schema = pa.schema([field if target is None else field.with_type(target)
                            for field, target in zip(list(reader.schema)[:len(columns)], targets, strict=True)])
        ctx.event("source_opened", source=f"mysql://{config.address}", columns=schema.names,
                  paged_by=key)
        batches = (self._pages(step_id, config, key, reader, schema, targets) if key
                   else self._batches(step_id, config, reader, schema, targets))
        return {MAIN_OUTPUT: pa.RecordBatchReader.from_batches(schema, batches)}

    @staticmethod
    def _integer_primary_key(step_id: str, config: MySQLExtractorConfig) -> str | None:
        """The table's primary key column when it is a single integer column (so pages can follow it)."""
        database, table = split_table(config.table or "", config.database)
        try:
            session = connect(config)
            with session, session.cursor() as cursor:
                cursor.execute(
                    "SELECT k.COLUMN_NAME, c.DATA_TYPE FROM information_schema.KEY_COLUMN_USAGE k "
                    "JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = k.TABLE_SCHEMA "
                    "AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME "
                    "WHERE k.TABLE_SCHEMA = %s AND k.TABLE_NAME = %s AND k.CONSTRAINT_NAME = 'PRIMARY'",
                    (database, table))
                rows = cursor.fetchall()
        except Exception as exc:
            problem = explain(exc, config)
            raise DriverError(problem.message, step_id=step_id, hint=problem.hint,
                              transient=problem.transient) from None
        integer_types = {"tinyint", "smallint", "mediumint", "int", "bigint"}
        if len(rows) == 1 and str(rows[0][1]).lower() in integer_types:
            return str(rows[0][0])
        return None

    @staticmethod
    def _page_sql(config: MySQLExtractorConfig, key: str, after: int | None) -> str:
        """One keyset page: the selected columns plus the key (as the last column), in key order."""
        database, table = split_table(config.table or "", config.database)
        columns = ", ".join(quote_ident(c) for c in config.columns) if config.columns else "*"
        where = f" WHERE {quote_ident(key)} > {int(after)}" if after is not None else ""
        return (f"SELECT {columns}, {quote_ident(key)} AS {PK_ALIAS} FROM {qualified(database, table)}{where} "
                f"ORDER BY {quote_ident(key)} LIMIT {_page_rows(config.limit)}")

    def _pages(self, step_id: str, config: MySQLExtractorConfig, key: str, first: pa.RecordBatchReader,
               schema: pa.Schema, targets: list[pa.DataType | None]) -> Iterator[pa.RecordBatch]:
        """The table in key pages (see `osiris_drivers.keyset_pages`); `first` is the already opened first page."""

        def read_page(after: int | None) -> Iterator[pa.RecordBatch]:
            reader = first if after is None else self._open(step_id, config, self._page_sql(config, key, after))
            return self._batches(step_id, config, reader, None, [*targets, None])

        return keyset_pages(read_page, schema, limit=config.limit, page_rows=_page_rows(config.limit),
                            name=f"osiris-{step_id}")

    @staticmethod
    def _describe(step_id: str, config: MySQLExtractorConfig, sql: str) -> list[ResultColumn]:
        """The result's columns as the server types them, from the query wrapped with LIMIT 0."""
        try:
            session = connect(config)
            with session, session.cursor() as cursor:
                cursor.execute(f"SELECT * FROM (\n{sql}\n) AS {PROBE_ALIAS} LIMIT 0")
                fields = cursor._result.fields  # pymysql's field descriptors: their flags hold UNSIGNED
        except Exception as exc:
            problem = explain(exc, config)
            hint = problem.hint
            if error_code(exc) == ER_PARSE:
                hint = f"write a single SELECT; it runs as SELECT * FROM (<query>) AS {PROBE_ALIAS} LIMIT 0 first"
            raise DriverError(problem.message, step_id=step_id, hint=hint, transient=problem.transient) from None
        return [ResultColumn.from_field(field) for field in fields]

    @staticmethod
    def _describe_failure(step_id: str, config: MySQLExtractorConfig) -> Describe:
        def describe(exc: BaseException, panic: bool) -> DriverError:
            message = config.scrub(" ".join(str(exc).split()))
            if panic:
                return DriverError(f"a value from MySQL at {config.address} has no Arrow form: {message}",
                                   step_id=step_id, hint="TIME must lie within a day and dates must be real dates; "
                                                         "CAST such columns AS CHAR in a query")
            return DriverError(f"reading from MySQL at {config.address} failed: {message}", step_id=step_id,
                               hint="check the query; retry if the server was busy", transient=True)

        return describe

    def _open(self, step_id: str, config: MySQLExtractorConfig, sql: str) -> pa.RecordBatchReader:
        return open_stream(connectorx_url(config), sql, self._describe_failure(step_id, config),
                           batch_size=BATCH_ROWS, pre_execution_query=[SESSION_TIME_ZONE])

    def _batches(self, step_id: str, config: MySQLExtractorConfig, reader: pa.RecordBatchReader,
                 schema: pa.Schema | None, targets: list[pa.DataType | None]) -> Iterator[pa.RecordBatch]:
        for batch in guarded_batches(reader, self._describe_failure(step_id, config)):
            try:
                arrays = [batch.column(i) if target is None else cast_column(batch.column(i), target)
                          for i, target in enumerate(targets)]
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DriverError(f"converting MySQL values to Arrow failed: {exc}", step_id=step_id,
                                  hint="CAST the column in a query to a type Arrow can hold") from None
            if schema is None:
                yield pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
            else:
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
