"""`mysql.extractor`: a MySQL/MariaDB table or query, streamed as Arrow record batches through ConnectorX.

The shared SQL extractor (`osiris_drivers.sql.extractor`) does the work; this module holds MySQL's hooks: the
`LIMIT 0` probe through pymysql (fast, and it fails fast with a clear error on bad credentials, an unreachable host
or an unknown table), the integer-key lookup, and the ConnectorX stream in UTC.

ConnectorX's MySQL client has no TLS, so a connection whose `ssl_mode` promises encryption (require, verify-ca,
verify-full) is refused rather than streamed in plain text.
"""

from __future__ import annotations

from functools import partial

import pyarrow as pa
from pydantic import Field

from osiris_core.driver import MAIN_OUTPUT, Driver, StepContext, StepInputs, StepOutputs
from osiris_core.errors import DriverError
from osiris_drivers.endpoint import ENCRYPTED_MODES
from osiris_drivers.mysql.connection import ER_PARSE, SESSION_TIME_ZONE, MySQLSettings, error_code
from osiris_drivers.mysql.dialect import MYSQL
from osiris_drivers.mysql.extractor.columns import DECLARED_SQL, declared, result_column
from osiris_drivers.sql.connectorx import open_stream
from osiris_drivers.sql.dialect import TableName
from osiris_drivers.sql.extractor import Cancel, ResultColumn, SourceOptions, SqlSource
from osiris_drivers.sql.source_types import SourceType

BATCH_ROWS = 65_536
"""Rows per record batch ConnectorX produces."""
PROBE_ALIAS = "__osiris_probe"
INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})


class MySQLExtractorConfig(MySQLSettings, SourceOptions):
    table: str | None = Field(default=None, min_length=1, pattern=r"^[^.]+(\.[^.]+)?$")


class MySQLSource(SqlSource):
    dialect = MYSQL
    PANIC_HINT = ("TIME must lie within a day and dates must be real dates; CAST such columns AS CHAR in a "
                  "query")

    def __init__(self, step_id: str, settings: MySQLSettings) -> None:
        super().__init__(step_id, settings)
        self.mysql = settings

    def prepare(self) -> None:
        if self.mysql.ssl_mode in ENCRYPTED_MODES:
            raise DriverError(f"ssl_mode {self.mysql.ssl_mode} cannot be honoured: the rows stream through "
                              "ConnectorX, whose MySQL client has no TLS", step_id=self.step_id,
                              hint="reach the server through an encrypted tunnel (ssh -L, stunnel) and set ssl_mode: "
                                   "disable for it, or accept ssl_mode: prefer (the row stream is then unencrypted)")

    def describe(self, sql: str) -> list[ResultColumn]:
        try:
            session = self.mysql.connect()
            with session, session.cursor() as cursor:
                cursor.execute(f"SELECT * FROM (\n{sql}\n) AS {PROBE_ALIAS} LIMIT 0")
                fields = cursor._result.fields  # pymysql's field descriptors: their flags hold UNSIGNED
        except Exception as exc:
            problem = self.mysql.explain(exc, "read")
            if error_code(exc) == ER_PARSE:
                raise DriverError(problem.message, step_id=self.step_id,
                                  hint=f"write a single SELECT; it runs as SELECT * FROM (<query>) AS {PROBE_ALIAS} "
                                       "LIMIT 0 first") from None
            raise problem.error(self.step_id) from None
        return [result_column(field) for field in fields]

    def declared_types(self, table: TableName) -> dict[str, SourceType]:
        """From information_schema: a query probe's columns name only the derived table they pass through."""
        try:
            session = self.mysql.connect()
            with session, session.cursor() as cursor:
                cursor.execute(DECLARED_SQL, {"schema": table.schema, "table": table.name})
                rows = cursor.fetchall()
        except Exception as exc:
            raise self.mysql.failure(exc, step_id=self.step_id, role="read") from None
        return {str(row[0]): declared(row) for row in rows}

    def integer_key(self, table: TableName) -> str | None:
        try:
            session = self.mysql.connect()
            with session, session.cursor() as cursor:
                cursor.execute(  # constants for both tables: a join on them read every table's columns
                    "SELECT k.COLUMN_NAME, (SELECT c.DATA_TYPE FROM information_schema.COLUMNS c WHERE "
                    "c.TABLE_SCHEMA = %(schema)s AND c.TABLE_NAME = %(table)s AND c.COLUMN_NAME = k.COLUMN_NAME) "
                    "FROM information_schema.KEY_COLUMN_USAGE k WHERE k.TABLE_SCHEMA = %(schema)s AND "
                    "k.TABLE_NAME = %(table)s AND k.CONSTRAINT_NAME = 'PRIMARY'",
                    {"schema": table.schema, "table": table.name})
                rows = cursor.fetchall()
        except Exception as exc:
            raise self.mysql.failure(exc, step_id=self.step_id, role="read") from None
        if len(rows) == 1 and str(rows[0][1]).lower() in INTEGER_TYPES:
            return str(rows[0][0])
        return None

    def open(self, sql: str, *, whole: bool = False) -> pa.RecordBatchReader:
        return open_stream(self.mysql.connectorx_url(), sql, self.stream_failure, whole=whole, batch_size=BATCH_ROWS,
                           pre_execution_query=[SESSION_TIME_ZONE])

    def canceller(self, marker: str) -> Cancel | None:
        return partial(kill_marked, self.mysql, marker)


def kill_marked(settings: MySQLSettings, marker: str) -> None:
    """KILL QUERY every other session whose running statement contains `marker`."""
    session = settings.connect()
    with session, session.cursor() as cursor:
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
                       "AND LOCATE(%s, INFO) > 0", (marker,))
        for (thread_id,) in cursor.fetchall():
            cursor.execute(f"KILL QUERY {int(thread_id)}")


class MySQLExtractor(Driver[MySQLExtractorConfig]):
    config_model = MySQLExtractorConfig

    def incremental(self, config: MySQLExtractorConfig) -> tuple[str, ...] | None:
        return config.incremental.columns if config.incremental is not None else None

    def run(self, *, step_id: str, config: MySQLExtractorConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        table = config.table_name(config.table) if config.table is not None else None
        reader = MySQLSource(step_id, config).read(config, table, ctx.incremental)
        ctx.source_opened(config.target(table), columns=reader.schema.names)
        return {MAIN_OUTPUT: reader}
