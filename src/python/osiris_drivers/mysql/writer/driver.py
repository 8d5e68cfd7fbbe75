"""`mysql.writer`: append, upsert or replace Arrow data in a MySQL/MariaDB table, atomically and fast.

The shared swap skeleton (`osiris_drivers.sql.writer.SwapWriter`) plans and undoes the write; this module holds
MySQL's hooks. Rows travel as CSV written batch by batch with pyarrow.csv into a temporary file and loaded with
`LOAD DATA LOCAL INFILE` in chunks (NULL as `\\N`, strings quoted with `\\` escaped, binary as hex through
`UNHEX`, booleans as 0/1, TIMESTAMP values in UTC). LOCAL turns rejected values into warnings, so every load's
warnings and row count are checked and any problem aborts the write. Servers with local_infile off get multi-row
INSERTs instead. The session sends the server only that temporary file, only during its LOAD DATA statement: a
request for any other file fails the step (see `osiris_drivers.mysql.client`).

- append: all loads run in one transaction on the target.
- upsert: loads go to a temporary staging table, then one `INSERT … SELECT … ON DUPLICATE KEY UPDATE`.
- replace, and any write to a missing table: the rows go to `<table>__osiris_new` (typed from the input), which
  one `RENAME TABLE` swaps in; the previous table is dropped after.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.csv as pacsv
from pydantic import Field

from osiris_core.driver import Driver, StepContext, StepInputs, StepOutputs, single_input
from osiris_core.interrupts import cancellable, stopping
from osiris_core.state import StateStore
from osiris_drivers.connection import Problem
from osiris_drivers.mysql.connection import ER_NO_SUCH_TABLE, MySQLSettings, error_code
from osiris_drivers.mysql.dialect import MYSQL, is_binary, to_python, to_text
from osiris_drivers.sql.duplicates import ORDINAL_COLUMN
from osiris_drivers.sql.schema_change import SchemaChange
from osiris_drivers.sql.state import SqlStateStore
from osiris_drivers.sql.writer import STAGE_SUFFIX, Plan, SwapWriter, TableWriteOptions
from osiris_drivers.step_io import batches, report_written

if TYPE_CHECKING:
    from osiris_drivers.mysql.client import SafeConnection

ORDINAL = MYSQL.quote_ident(ORDINAL_COLUMN)
CHUNK_BYTES = 64 << 20
"""Arrow bytes per LOAD DATA file: bounds the temporary file whatever the input size."""
CSV_OPTIONS = pacsv.WriteOptions(include_header=False, delimiter=",", quoting_style="needed", null_string="\\N")
LOAD_FORMAT = ("CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' "
               "LINES TERMINATED BY '\\n'")


class MySQLWriterConfig(MySQLSettings, TableWriteOptions):
    table: str = Field(min_length=1, pattern=r"^[^.]+(\.[^.]+)?$")


class Rejected(Exception):
    """MySQL refused some rows of a load (a warning under LOAD DATA LOCAL, or fewer rows than sent)."""


class MySQLTableWriter(SwapWriter):
    dialect = MYSQL
    STAGE_ORDER = (ORDINAL,)

    def __init__(self, step_id: str, config: MySQLWriterConfig, data: pa.Table | pa.RecordBatchReader,
                 ctx: StepContext, *, use_load_data: bool) -> None:
        super().__init__(step_id, config, config.table_name(config.table), data, ctx, settings=config)
        self.config = config
        self.use_load_data = use_load_data
        self.stage_table = MYSQL.quote_ident(MYSQL.helper_name(self.table.name, STAGE_SUFFIX))
        """TEMPORARY: private to this session."""
        self.tmpdir: Path | None = None
        self._stop = contextlib.ExitStack()
        self._session: SafeConnection | None = None

    @property
    def session(self) -> SafeConnection:
        assert self._session is not None
        return self._session

    def explain(self, exc: BaseException) -> Problem:
        if isinstance(exc, Rejected):
            return Problem(str(exc), "fix, cast or filter those values upstream")
        return self.config.explain(exc, "write")

    # ------------------------------------------------------------------------------------------------ session

    def open(self) -> None:
        """A session with strict mode (bad values fail instead of being truncated), backslash escapes on and notes
        off (so the warning count after a load counts only real problems)."""
        self._session = self.config.connect(local_infile=self.use_load_data, autocommit=False)
        with self._session.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            (thread_id,) = cursor.fetchone() or (0,)
        self._stop.enter_context(cancellable(partial(self._kill_query, int(thread_id))))
        with self.session.cursor() as cursor:
            cursor.execute("SELECT @@SESSION.sql_mode, @@GLOBAL.local_infile")
            row = cursor.fetchone()
            assert row is not None
            modes = [m for m in str(row[0]).split(",") if m and m != "NO_BACKSLASH_ESCAPES"]
            if "STRICT_ALL_TABLES" not in modes:
                modes.append("STRICT_ALL_TABLES")
            cursor.execute("SET SESSION sql_mode = %s, sql_notes = 0", (",".join(modes),))
            self.use_load_data = self.use_load_data and bool(int(row[1] or 0))

    def _kill_query(self, thread_id: int) -> None:
        """End this session's running statement from a second connection (SIGINT/SIGTERM: the run stops)."""
        killer = self.config.connect()
        with killer, killer.cursor() as cursor:
            cursor.execute(f"KILL QUERY {int(thread_id)}")

    def close(self) -> None:
        self._stop.close()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        if self._session is not None:
            with contextlib.suppress(Exception):  # already gone: nothing left to release
                self._session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        if stopping() and self._session is not None:
            # A stop may have cut the session mid-protocol (a LOAD DATA LOCAL half sent): a ROLLBACK on it would wait
            # for an answer that never comes. Dropping the connection rolls its transaction back on the server.
            self._session._force_close()  # type: ignore[attr-defined]
            return
        self.session.rollback()

    def execute(self, sql: str) -> int:
        with self.session.cursor() as cursor:
            return int(cursor.execute(sql))

    def query_row(self, sql: str) -> Sequence[Any] | None:
        with self.session.cursor() as cursor:
            cursor.execute(sql)
            row: Sequence[Any] | None = cursor.fetchone()
            return row

    def drop_on_fresh_session(self, sql: str) -> None:
        fresh = self.config.connect()
        with fresh, fresh.cursor() as cursor:
            cursor.execute(sql)

    def rename_sql(self, pairs: Sequence[tuple[str, str]]) -> str:
        return MYSQL.rename_sql(pairs)

    # ------------------------------------------------------------------------------------------------ plan

    def columns(self) -> list[str] | None:
        """The table's column names, or None if it does not exist (resolved by the server, as writes are)."""
        try:
            with self.session.cursor() as cursor:
                cursor.execute(f"SELECT * FROM {self.target} LIMIT 0")
                return [str(d[0]) for d in cursor.description]
        except Exception as exc:
            if error_code(exc) == ER_NO_SUCH_TABLE:
                return None
            raise

    def check_existing(self, plan: Plan) -> None:
        """Upsert needs a PRIMARY KEY or UNIQUE index on exactly the primary_key columns (MySQL would otherwise
        insert every row)."""
        if self.options.write_mode != "upsert":
            return
        with self.session.cursor() as cursor:
            cursor.execute(f"SHOW INDEX FROM {self.target}")
            names = [str(d[0]) for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        indexes: dict[str, set[str]] = {}
        for row in rows:
            if int(row["Non_unique"]) == 0:
                indexes.setdefault(str(row["Key_name"]), set()).add(str(row["Column_name"]).lower())
        if {c.lower() for c in self.options.primary_key} in indexes.values():
            return
        found = sorted(sorted(columns) for columns in indexes.values())
        raise self.fail(
            f"table {self.label} {self.where} has no PRIMARY KEY or UNIQUE index on {self.options.primary_key} "
            f"(unique indexes: {found or 'none'})",
            f"add one (ALTER TABLE {self.target} ADD UNIQUE ({MYSQL.column_list(self.options.primary_key)})) or set "
            "primary_key to an existing one")

    def plan(self, existing: list[str] | None, *, input_known: bool = True) -> Plan:
        """As shared; a write that swaps an existing table (replace, or a schema change) refuses foreign keys."""
        plan = super().plan(existing, input_known=input_known)
        if plan.existing is not None and (plan.rebuild or plan.change.alters):
            self.refuse_foreign_keys("replace rebuilds it" if plan.rebuild else
                                     f"on_schema_change {self.options.on_schema_change} {plan.change.describe()}")
        return plan

    def refuse_foreign_keys(self, why: str) -> None:
        """The swap (`RENAME TABLE`) would re-point other tables' foreign keys to the old table and take the table's
        triggers with it (dropped with the old table), and `CREATE TABLE … LIKE` drops the table's own foreign keys:
        refuse, naming them, before anything changes."""
        where = (self.table.schema, self.table.name)
        with self.session.cursor() as cursor:
            cursor.execute("SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME FROM "
                           "information_schema.REFERENTIAL_CONSTRAINTS WHERE (CONSTRAINT_SCHEMA = %s AND TABLE_NAME = "
                           "%s) OR (UNIQUE_CONSTRAINT_SCHEMA = %s AND REFERENCED_TABLE_NAME = %s) ORDER BY 2, 1",
                           where + where)
            keys = [f"{name} ({child} → {parent})" for name, child, parent in cursor.fetchall()]
            cursor.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = %s AND "
                           "EVENT_OBJECT_TABLE = %s ORDER BY 1", where)
            triggers = [str(name) for (name,) in cursor.fetchall()]
        found = ([f"foreign keys {', '.join(keys)}"] if keys else []) + \
            ([f"triggers {', '.join(triggers)}"] if triggers else [])
        if found:
            raise self.fail(
                f"table {self.label} {self.where} has {' and '.join(found)}, and this write ({why}) swaps in a new "
                "table by RENAME TABLE, which would leave foreign keys pointing at the old table or drop them, and "
                "drop the triggers",
                "drop those before this write and re-create them after, or change the table yourself (ALTER TABLE) "
                "and write with on_schema_change: ignore")

    def table_types(self, existing: list[str]) -> dict[str, str | None]:
        return {name: sql_type for name, (sql_type, _) in self._column_definitions().items()}

    def _column_definitions(self) -> dict[str, tuple[str, str]]:
        """Each column's type and what `MODIFY COLUMN` must restate to keep it: NOT NULL, AUTO_INCREMENT and the
        comment."""
        with self.session.cursor() as cursor:
            cursor.execute("SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_COMMENT, EXTRA "
                           "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                           "ORDER BY ORDINAL_POSITION",
                           (self.table.schema, self.table.name))
            rows = cursor.fetchall()
        return {str(name): (str(sql_type), (" NOT NULL" if nullable == "NO" else "")
                            + (" AUTO_INCREMENT" if "auto_increment" in str(extra).lower() else "")
                            + (f" COMMENT {self.session.escape(str(comment))}" if comment else ""))
                for name, sql_type, nullable, comment, extra in rows}

    def schema_change(self, existing: list[str]) -> SchemaChange:
        """As shared, with a widened column's NOT NULL and comment restated (MODIFY COLUMN replaces them)."""
        change = super().schema_change(existing)
        if not change.retype:
            return change
        kept = {MYSQL.fold(n): extra for n, (_, extra) in self._column_definitions().items()}
        return replace(change, retype=tuple((n, t + kept.get(MYSQL.fold(n), "")) for n, t in change.retype))

    def kept_on_rebuild(self, table: str) -> list[str]:
        """replace keeps the target's secondary indexes whose columns the new table has (and its PRIMARY KEY when
        the write names no primary_key), and its table comment, added to the new table before the swap."""
        schema, types, _ = self.table_definition()
        # A TEXT/BLOB column is indexable only by a prefix: an index without one is not kept.
        columns = {n.lower(): t.upper().endswith(("TEXT", "BLOB")) for n, t in zip(schema.names, types, strict=True)}
        with self.session.cursor() as cursor:
            cursor.execute(f"SHOW INDEX FROM {self.target}")
            names = [str(d[0]) for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            cursor.execute("SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                           "TABLE_NAME = %s", (self.table.schema, self.table.name))
            comment = cursor.fetchone()
        indexes: dict[str, list[dict[str, object]]] = {}
        for row in rows:
            if row["Key_name"] != "PRIMARY" or not self.options.primary_key:  # the write's own key, or the old one
                indexes.setdefault(str(row["Key_name"]), []).append(row)
        statements = []
        for name, parts in indexes.items():
            if any(p.get("Expression") is not None or str(p["Column_name"]).lower() not in columns
                   or (columns[str(p["Column_name"]).lower()] and p["Sub_part"] is None) for p in parts):
                continue
            parts.sort(key=lambda p: int(str(p["Seq_in_index"])))
            cols = ", ".join(MYSQL.quote_ident(str(p["Column_name"])) + (f"({int(str(p['Sub_part']))})"
                                                                        if p["Sub_part"] is not None else "")
                             for p in parts)
            unique = "UNIQUE " if int(str(parts[0]["Non_unique"])) == 0 else ""
            added = "PRIMARY KEY" if name == "PRIMARY" else f"{unique}INDEX {MYSQL.quote_ident(name)}"
            statements.append(f"ALTER TABLE {table} ADD {added} ({cols})")
        if comment and comment[0]:
            statements.append(f"ALTER TABLE {table} COMMENT = {self.session.escape(str(comment[0]))}")
        return statements

    def check_swap(self, new: str) -> None:
        """Views name the target by name, so after the swap they read the new table: each view that names the
        target must still work on `new` — tried as a throw-away view over it — or the write is refused, naming it."""
        qualified = f"{MYSQL.quote_ident(self.table.schema)}.{MYSQL.quote_ident(self.table.name)}"
        with self.session.cursor() as cursor:
            cursor.execute("SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS "
                           "WHERE LOCATE(%s, VIEW_DEFINITION) > 0 ORDER BY 1, 2", (qualified,))
            views = cursor.fetchall()
        probe = self.helper("__osiris_view_check")
        for schema, name, definition in views:
            try:
                self.execute(f"CREATE OR REPLACE VIEW {probe} AS {str(definition).replace(qualified, new)}")
            except Exception as exc:
                raise self.fail(
                    f"the write would swap a new table in for {self.label} {self.where}, but view {schema}.{name} "
                    f"would no longer work on it: {self.explain(exc).message}",
                    "change or drop that view first, or give the input the columns it reads") from None
            finally:
                self.execute(f"DROP VIEW IF EXISTS {probe}")

    # ------------------------------------------------------------------------------------------------ loads

    def stage(self, table: str) -> tuple[str, int | None]:
        """A keyless TEMPORARY table typed like `table`'s columns (and a BOOLEAN `hard_delete_column`), loaded, its
        rows numbered in input order."""
        self.discard_stage()
        flag = self.options.hard_delete_column
        extra = f", {MYSQL.quote_ident(flag)} BOOLEAN" if flag else ""
        self.execute(f"CREATE TEMPORARY TABLE {self.stage_table} ({ORDINAL} BIGINT AUTO_INCREMENT PRIMARY KEY{extra}) "
                     f"SELECT {MYSQL.column_list(self.written)} FROM {table} LIMIT 0")
        return self.stage_table, self.load(self.stage_table)

    def discard_stage(self) -> None:
        self.execute(f"DROP TEMPORARY TABLE IF EXISTS {self.stage_table}")

    def load(self, table: str) -> int:
        return self._load_data(table) if self.use_load_data else self._insert_rows(table)

    def _load_data(self, table: str) -> int:
        binary = [is_binary(f.type) for f in self.data.schema]
        targets = ", ".join(f"@v{i}" if is_bin else MYSQL.quote_ident(name)
                            for i, (name, is_bin) in enumerate(zip(self.names, binary, strict=True)))
        sets = ", ".join(f"{MYSQL.quote_ident(name)} = UNHEX(@v{i})"
                         for i, (name, is_bin) in enumerate(zip(self.names, binary, strict=True)) if is_bin)
        self.tmpdir = self.tmpdir or Path(tempfile.mkdtemp(prefix="osiris-mysql-"))
        path = self.tmpdir / "rows.csv"
        statement = (f"LOAD DATA LOCAL INFILE {self.session.escape(str(path))} INTO TABLE {table} {LOAD_FORMAT} "
                     f"({targets})" + (f" SET {sets}" if sets else ""))
        writer: pacsv.CSVWriter | None = None
        total = chunk_rows = chunk_bytes = 0
        for batch in batches(self.data):
            text = pa.RecordBatch.from_arrays([to_text(column) for column in batch.columns], names=self.names)
            if writer is None:
                writer = pacsv.CSVWriter(str(path), text.schema, write_options=CSV_OPTIONS)
            writer.write_batch(text)
            chunk_rows += batch.num_rows
            chunk_bytes += text.nbytes
            if chunk_bytes >= CHUNK_BYTES:
                writer.close()
                writer = None
                total += self._load_file(statement, path, chunk_rows, total)
                chunk_rows = chunk_bytes = 0
        if writer is not None:
            writer.close()
            total += self._load_file(statement, path, chunk_rows, total)
        return total

    def _load_file(self, statement: str, path: Path, rows: int, offset: int) -> int:
        """Run the LOAD DATA statement; the server may read `path` and no other file."""
        with self.session.cursor() as cursor:
            with self.session.offering(str(path)):
                loaded = int(cursor.execute(statement))
            if cursor.warning_count:
                cursor.execute("SHOW WARNINGS LIMIT 5")
                problems = [str(w[2]) for w in cursor.fetchall() if str(w[0]) != "Note"]
                if problems:
                    first = re.sub(r"\bat row (\d+)", lambda m: f"at row {offset + int(m[1])}", problems[0])
                    raise Rejected(f"MySQL rejected a value: {first}")
        if loaded != rows:
            raise Rejected(f"MySQL stored {loaded} of {rows} rows (duplicate keys?)")
        return loaded

    def _insert_rows(self, table: str) -> int:
        columns = MYSQL.column_list(self.names).replace("%", "%%")
        placeholders = ", ".join(["%s"] * len(self.names))
        statement = f"INSERT INTO {table.replace('%', '%%')} ({columns}) VALUES ({placeholders})"
        total = 0
        with self.session.cursor() as cursor:
            for batch in batches(self.data):
                rows = list(zip(*(to_python(column) for column in batch.columns), strict=True))
                cursor.executemany(statement, rows)
                total += batch.num_rows
        return total


class MySQLStateStore(SqlStateStore):
    """The state table in the target's database, one short session per statement."""

    def __init__(self, *args: Any, config: MySQLSettings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = config

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        session = self.config.connect()
        with session, session.cursor() as cursor:
            cursor.execute(sql)
            rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
            session.commit()
            return rows


class MySQLWriter(Driver[MySQLWriterConfig]):
    config_model = MySQLWriterConfig

    def state_store(self, *, step_id: str, config: MySQLWriterConfig) -> StateStore:
        table = config.table_name(config.table)
        return MySQLStateStore(step_id, config, MYSQL, table, config.target(table), write_mode=config.write_mode,
                               primary_key=config.primary_key,
                               delete_missing=config.delete_missing, config=config)
    use_load_data: ClassVar[bool] = True
    """LOAD DATA LOCAL INFILE when the server allows it; False always uses multi-row INSERTs."""

    def run(self, *, step_id: str, config: MySQLWriterConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        writer = MySQLTableWriter(step_id, config, single_input(step_id, inputs), ctx,
                                  use_load_data=self.use_load_data)
        rows = writer.run()
        report_written(ctx, config.target(writer.table), rows)
        return {}
