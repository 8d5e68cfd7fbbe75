"""`mysql.writer`: append, upsert or replace Arrow data in a MySQL/MariaDB table, atomically and fast.

Rows travel as CSV written batch by batch with pyarrow.csv into a temporary file and loaded with
`LOAD DATA LOCAL INFILE` in chunks (NULL as `\\N`, strings quoted with `\\` escaped, binary as hex through
`UNHEX`, booleans as 0/1, TIMESTAMP values in UTC). LOCAL turns rejected values into warnings, so every
load's warnings and row count are checked and any problem aborts the write. Servers with local_infile off
get multi-row INSERTs instead. The session sends the server only that temporary file, only during its LOAD
DATA statement: a request for any other file fails the step (see `osiris_drivers.mysql.client`).

- append: all loads run in one transaction on the target.
- upsert: loads go to a temporary staging table, then one `INSERT … SELECT … ON DUPLICATE KEY UPDATE`.
- replace, and any write to a missing table: the rows go to `<table>__osiris_new` (typed from the input), which
  one `RENAME TABLE` swaps in; the previous table is dropped after.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
from pydantic import Field

from osiris_core.driver import ROWS_WRITTEN, ArrowData, Driver, StepContext, StepInputs, StepOutputs
from osiris_core.errors import DriverError, OsirisError
from osiris_drivers.mysql.connection import (
    CR_LOAD_DATA_LOCAL_INFILE_REJECTED,
    CR_SERVER_GONE,
    CR_SERVER_LOST,
    ER_NO_SUCH_TABLE,
    MySQLSettings,
    connect,
    error_code,
    explain,
    qualified,
    quote_ident,
    split_table,
)
from osiris_drivers.mysql.types import UnsupportedType, check_writable, column_type, is_binary, to_python, to_text

if TYPE_CHECKING:
    from osiris_drivers.mysql.client import SafeConnection

NEW_SUFFIX = "__osiris_new"
OLD_SUFFIX = "__osiris_old"
STAGE_SUFFIX = "__osiris_stage"
MAX_IDENTIFIER = 64
CHUNK_BYTES = 64 << 20
"""Arrow bytes per LOAD DATA file: bounds the temporary file whatever the input size."""
CSV_OPTIONS = pacsv.WriteOptions(include_header=False, delimiter=",", quoting_style="needed", null_string="\\N")
LOAD_FORMAT = ("CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' "
               "LINES TERMINATED BY '\\n'")
TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
UNCHANGED = "the table was left unchanged"


class MySQLWriterConfig(MySQLSettings):
    table: str = Field(min_length=1, pattern=r"^[^.]+(\.[^.]+)?$")
    write_mode: Literal["append", "replace", "upsert"] = "append"
    primary_key: list[str] = Field(default_factory=list)
    create_if_missing: bool = True


class Rejected(Exception):
    """MySQL refused some rows of a load (a warning under LOAD DATA LOCAL, or fewer rows than sent)."""


def helper_name(table: str, suffix: str) -> str:
    """`<table><suffix>`, shortened to MySQL's 64-character identifier limit."""
    if len(table) + len(suffix) <= MAX_IDENTIFIER:
        return table + suffix
    digest = hashlib.sha256(table.encode("utf-8")).hexdigest()[:8]
    return f"{table[:MAX_IDENTIFIER - len(suffix) - 9]}_{digest}{suffix}"


def create_table_sql(table: str, schema: pa.Schema, primary_key: list[str]) -> str:
    keys = set(primary_key)
    columns = [f"{quote_ident(f.name)} {column_type(f.type, key=f.name in keys)}"
               f"{' NOT NULL' if f.name in keys or not f.nullable else ''}" for f in schema]
    if primary_key:
        columns.append(f"PRIMARY KEY ({', '.join(quote_ident(c) for c in primary_key)})")
    return f"CREATE TABLE {table} ({', '.join(columns)}) {TABLE_OPTIONS}"


def _batches(data: ArrowData) -> Iterator[pa.RecordBatch]:
    yield from (data.to_batches() if isinstance(data, pa.Table) else data)


class MySQLWriter(Driver[MySQLWriterConfig]):
    config_model = MySQLWriterConfig
    use_load_data: ClassVar[bool] = True
    """LOAD DATA LOCAL INFILE when the server allows it; False always uses multi-row INSERTs."""

    def run(self, *, step_id: str, config: MySQLWriterConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        if len(inputs) != 1:
            raise DriverError(f"needs exactly one input, got {len(inputs)}", step_id=step_id,
                              hint="list the one step to write under `needs`")
        if config.write_mode == "upsert" and not config.primary_key:
            raise DriverError("write_mode upsert needs primary_key", step_id=step_id,
                              hint="set primary_key: [column, ...]")
        data = next(iter(inputs.values()))
        names = data.schema.names
        missing_keys = sorted(set(config.primary_key) - set(names))
        if missing_keys:
            raise DriverError(f"primary_key columns {missing_keys} are not in the input", step_id=step_id,
                              hint=f"input columns: {names}")
        folded = [n.lower() for n in names]
        duplicates = sorted({n for n in names if folded.count(n.lower()) > 1})
        if duplicates:
            raise DriverError(f"input columns {duplicates} clash (MySQL column names ignore case)",
                              step_id=step_id, hint="rename them in an upstream step")
        try:
            check_writable(data.schema)
        except UnsupportedType as exc:
            raise DriverError(f"cannot write to MySQL: {exc}", step_id=step_id,
                              hint="cast or drop that column upstream (e.g. in a duckdb.processor step)") from None
        try:
            session = connect(config, local_infile=self.use_load_data, autocommit=False)
        except Exception as exc:
            problem = explain(exc, config)
            raise DriverError(problem.message, step_id=step_id, hint=problem.hint,
                              transient=problem.transient) from None
        try:
            rows = _Write(self, session, step_id, config, data, ctx).run()
        finally:
            with contextlib.suppress(Exception):  # already gone: nothing left to release
                session.close()
        database, table = split_table(config.table, config.database)
        ctx.metric(ROWS_WRITTEN, rows, "rows")
        ctx.event("output_written", target=f"mysql://{config.host}:{config.port}/{database}#{table}", rows=rows)
        return {}


class _Write:
    """One write: the session, the names involved and what to undo if it fails."""

    def __init__(self, driver: MySQLWriter, session: SafeConnection, step_id: str, config: MySQLWriterConfig,
                 data: ArrowData, ctx: StepContext) -> None:
        self.session = session
        self.step_id = step_id
        self.config = config
        self.data = data
        self.ctx = ctx
        self.use_load_data = driver.use_load_data
        self.database, self.name = split_table(config.table, config.database)
        self.target = qualified(self.database, self.name)
        self.label = f"{self.database}.{self.name} at {config.host}:{config.port}"
        self.new = qualified(self.database, helper_name(self.name, NEW_SUFFIX))
        self.old = qualified(self.database, helper_name(self.name, OLD_SUFFIX))
        self.stage = quote_ident(helper_name(self.name, STAGE_SUFFIX))  # TEMPORARY: private to this session
        self.names = data.schema.names
        self.created: list[str] = []  # helper tables to drop if the write fails
        self.tmpdir: Path | None = None

    def fail(self, message: str, hint: str, *, transient: bool = False) -> DriverError:
        return DriverError(message, step_id=self.step_id, hint=hint, transient=transient)

    def execute(self, sql: str) -> int:
        with self.session.cursor() as cursor:
            return int(cursor.execute(sql))

    # ----------------------------------------------------------------------------------------- plan

    def run(self) -> int:
        config = self.config
        try:
            self._prepare_session()
            existing = self._columns(self.target)
            unique = self._unique_keys() if existing is not None and config.write_mode == "upsert" else []
        except Exception as exc:
            problem = explain(exc, config)
            raise self.fail(problem.message, problem.hint, transient=problem.transient) from None
        if existing is None and not config.create_if_missing:
            raise self.fail(f"table {self.label} does not exist",
                            "create it first or set create_if_missing: true")
        if existing is not None and config.write_mode != "replace":
            self._check_columns(existing)
        if existing is not None and config.write_mode == "upsert":
            self._check_key(unique)
        try:
            try:
                if existing is None or config.write_mode == "replace":
                    return self._via_new_table(swap=existing is not None)
                if config.write_mode == "append":
                    rows = self._load(self.target)
                    self.session.commit()
                    return rows
                return self._upsert_from_stage(self.target)
            finally:
                if self.tmpdir is not None:
                    shutil.rmtree(self.tmpdir, ignore_errors=True)
        except OsirisError:
            self._undo()
            raise
        except Rejected as exc:
            self._undo()
            raise self.fail(f"writing {self.label} failed: {exc}", UNCHANGED) from None
        except pa.ArrowException as exc:
            self._undo()
            raise self.fail(f"writing {self.label} failed: converting the input: {exc}", UNCHANGED) from None
        except Exception as exc:
            self._undo()
            if not _is_mysql_error(exc):
                raise
            problem = explain(exc, config)
            lost = error_code(exc) in (CR_SERVER_GONE, CR_SERVER_LOST, CR_LOAD_DATA_LOCAL_INFILE_REJECTED)
            raise self.fail(f"writing {self.label} failed: {problem.message}",
                            f"{UNCHANGED}; {problem.hint}" if lost else UNCHANGED,
                            transient=problem.transient) from None
        except BaseException:
            self._undo()
            raise

    def _prepare_session(self) -> None:
        """Strict mode (bad values fail instead of being truncated), backslash escapes on, notes off (so the
        warning count after a load counts only real problems)."""
        with self.session.cursor() as cursor:
            cursor.execute("SELECT @@SESSION.sql_mode, @@GLOBAL.local_infile")
            row = cursor.fetchone()
            assert row is not None
            modes = [m for m in str(row[0]).split(",") if m and m != "NO_BACKSLASH_ESCAPES"]
            if "STRICT_ALL_TABLES" not in modes:
                modes.append("STRICT_ALL_TABLES")
            cursor.execute("SET SESSION sql_mode = %s, sql_notes = 0", (",".join(modes),))
            self.use_load_data = self.use_load_data and bool(int(row[1] or 0))

    def _columns(self, table: str) -> list[str] | None:
        """The table's column names, or None if it does not exist (resolved by the server, as writes are)."""
        import pymysql

        try:
            with self.session.cursor() as cursor:
                cursor.execute(f"SELECT * FROM {table} LIMIT 0")
                return [str(d[0]) for d in cursor.description]
        except pymysql.err.ProgrammingError as exc:
            if error_code(exc) == ER_NO_SUCH_TABLE:
                return None
            raise

    def _check_columns(self, existing: list[str]) -> None:
        known = {c.lower() for c in existing}
        unknown = [n for n in self.names if n.lower() not in known]
        if unknown:
            raise self.fail(f"input columns {unknown} are not in table {self.label}",
                            f"table columns: {existing}; add them, or use write_mode: replace to retype the table")

    def _unique_keys(self) -> list[set[str]]:
        """The column sets (lower-cased) of the target's PRIMARY KEY and UNIQUE indexes."""
        with self.session.cursor() as cursor:
            cursor.execute(f"SHOW INDEX FROM {self.target}")
            names = [str(d[0]) for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        indexes: dict[str, set[str]] = {}
        for row in rows:
            if int(row["Non_unique"]) == 0:
                indexes.setdefault(str(row["Key_name"]), set()).add(str(row["Column_name"]).lower())
        return list(indexes.values())

    def _check_key(self, unique: list[set[str]]) -> None:
        """Upsert needs a PRIMARY KEY or UNIQUE index on exactly the primary_key columns."""
        if {c.lower() for c in self.config.primary_key} in unique:
            return
        found = sorted(sorted(columns) for columns in unique)
        columns = ", ".join(quote_ident(c) for c in self.config.primary_key)
        raise self.fail(
            f"table {self.label} has no PRIMARY KEY or UNIQUE index on {self.config.primary_key} "
            f"(unique indexes: {found or 'none'})",
            f"add one (ALTER TABLE {self.target} ADD UNIQUE ({columns})) or set primary_key to an existing one")

    # ----------------------------------------------------------------------------------------- writes

    def _via_new_table(self, *, swap: bool) -> int:
        """Fill `<table>__osiris_new`, typed from the input, then swap it in with one RENAME TABLE."""
        self.execute(f"DROP TABLE IF EXISTS {self.new}, {self.old}")  # leftovers of a crashed run
        self.created.append(self.new)
        self.execute(create_table_sql(self.new, self.data.schema, self.config.primary_key))
        if self.config.write_mode == "upsert":
            rows = self._upsert_from_stage(self.new)  # later duplicates win, as in any upsert
        else:
            rows = self._load(self.new)
            self.session.commit()
        if swap:
            self.execute(f"RENAME TABLE {self.target} TO {self.old}, {self.new} TO {self.target}")
            self.created.clear()
            try:
                self.execute(f"DROP TABLE {self.old}")
            except Exception as exc:
                self.ctx.logger.warning("could not drop %s after the swap: %s", self.old, exc)
        else:
            self.execute(f"RENAME TABLE {self.new} TO {self.target}")
            self.created.clear()
        return rows

    def _upsert_from_stage(self, table: str) -> int:
        """Load a keyless TEMPORARY table typed like `table`'s columns, then one INSERT … ON DUPLICATE KEY UPDATE."""
        columns = ", ".join(quote_ident(n) for n in self.names)
        self.execute(f"DROP TEMPORARY TABLE IF EXISTS {self.stage}")
        self.execute(f"CREATE TEMPORARY TABLE {self.stage} SELECT {columns} FROM {table} LIMIT 0")
        rows = self._load(self.stage)
        keys = {k.lower() for k in self.config.primary_key}
        updates = ", ".join(f"{quote_ident(n)} = VALUES({quote_ident(n)})" for n in self.names
                            if n.lower() not in keys)
        if not updates:  # every column is a key: nothing to update, duplicates are simply kept
            first = quote_ident(self.names[0])
            updates = f"{first} = {first}"
        self.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {self.stage} "
                     f"ON DUPLICATE KEY UPDATE {updates}")
        self.session.commit()
        self.execute(f"DROP TEMPORARY TABLE IF EXISTS {self.stage}")
        return rows

    def _load(self, table: str) -> int:
        """Send every input row to `table` (inside the session's open transaction); the row count."""
        if self.use_load_data:
            return self._load_data(table)
        return self._insert_rows(table)

    def _load_data(self, table: str) -> int:
        binary = [is_binary(f.type) for f in self.data.schema]
        targets = ", ".join(f"@v{i}" if is_bin else quote_ident(name)
                            for i, (name, is_bin) in enumerate(zip(self.names, binary, strict=True)))
        sets = ", ".join(f"{quote_ident(name)} = UNHEX(@v{i})"
                         for i, (name, is_bin) in enumerate(zip(self.names, binary, strict=True)) if is_bin)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="osiris-mysql-"))
        path = self.tmpdir / "rows.csv"
        statement = (f"LOAD DATA LOCAL INFILE {self.session.escape(str(path))} INTO TABLE {table} {LOAD_FORMAT} "
                     f"({targets})" + (f" SET {sets}" if sets else ""))
        writer: pacsv.CSVWriter | None = None
        total = chunk_rows = chunk_bytes = 0
        for batch in _batches(self.data):
            if batch.num_rows == 0:
                continue
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
        columns = ", ".join(quote_ident(n) for n in self.names).replace("%", "%%")
        placeholders = ", ".join(["%s"] * len(self.names))
        statement = f"INSERT INTO {table.replace('%', '%%')} ({columns}) VALUES ({placeholders})"
        total = 0
        with self.session.cursor() as cursor:
            for batch in _batches(self.data):
                if batch.num_rows:
                    rows = list(zip(*(to_python(column) for column in batch.columns), strict=True))
                    cursor.executemany(statement, rows)
                    total += batch.num_rows
        return total

    # ----------------------------------------------------------------------------------------- undo

    def _undo(self) -> None:
        """Roll back and drop the helper tables, on a fresh session if this one is gone."""
        with contextlib.suppress(Exception):  # a dead session: the server discards its transaction and temp tables
            self.session.rollback()
            self.execute(f"DROP TEMPORARY TABLE IF EXISTS {self.stage}")
        if not self.created:
            return
        drop = f"DROP TABLE IF EXISTS {', '.join(self.created)}"
        try:
            self.execute(drop)
        except Exception:
            try:
                fresh = connect(self.config)
                with fresh, fresh.cursor() as cursor:
                    cursor.execute(drop)
            except Exception as exc:
                self.ctx.logger.warning("could not drop %s: %s", ", ".join(self.created), exc)
        self.created.clear()


def _is_mysql_error(exc: BaseException) -> bool:
    import pymysql

    return isinstance(exc, pymysql.err.MySQLError)
