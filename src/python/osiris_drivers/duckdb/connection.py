"""The `duckdb` family: a database file (or, for `duckdb.processor`, a confined in-memory database), its settings,
the doctor's check and one-line error messages.

DuckDB is imported where it runs, as the other families' clients are: compiling a pipeline (a sandbox run's host)
needs the configs, not DuckDB, and a sandbox installs it only for a run with a DuckDB step.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from osiris_core.targets import file_object_uri
from osiris_drivers.connection import ConnectionFailed, ConnectionSettings, Problem, Role, one_line
from osiris_drivers.sql.dialect import TableName, split_name

if TYPE_CHECKING:
    import duckdb

DEFAULT_SCHEMA = "main"
CONFINED = ("SET autoinstall_known_extensions = false", "SET autoload_known_extensions = false",
            "SET enable_external_access = false", "SET lock_configuration = true")
"""Applied after the spill folder is set (DuckDB refuses to set it once external access is off)."""
EXTERNAL_ACCESS_HINT = ("this step's SQL may read only its inputs (no files, URLs, ATTACH, COPY, extensions or SET); "
                        "set allow_external_access: true in the step's config to allow that")


class DuckDBSettings(ConnectionSettings):
    """A DuckDB database file; `duckdb.writer`'s config extends it."""

    family: ClassVar[str] = "duckdb"

    path: str = Field(min_length=1)

    @property
    def where(self) -> str:
        return f"in {self.path}"

    def table_name(self, table: str) -> TableName:
        """`schema.table` or `table` (in `main`)."""
        return split_name(table, DEFAULT_SCHEMA)

    def target(self, table: TableName) -> str:
        """`duckdb:///abs/file.duckdb#schema.table`."""
        return file_object_uri("duckdb", self.path, table.schema, table.name)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """The database file, created with its parent folders if missing."""
        import duckdb  # here: compiling a pipeline (e.g. on a sandbox run's host) imports no DuckDB

        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(self.path)
        con.execute("SET enable_progress_bar = false")  # stdout belongs to the CLI (`--json` is one document)
        return con

    def check(self) -> str:
        import duckdb

        if not Path(self.path).is_file():
            raise ConnectionFailed(Problem(f"no DuckDB file at {self.path}",
                                           "check `path` (a duckdb.writer step creates the file)"))
        with duckdb.connect(self.path, read_only=True) as con:
            row = con.execute("SELECT version(), (SELECT count(*) FROM duckdb_tables())").fetchone()
        assert row is not None
        return f"ok: DuckDB {row[0]}, {row[1]} tables in {self.path}"

    def problem(self, exc: BaseException, role: Role) -> Problem:
        import duckdb

        text = one_line(exc)
        if isinstance(exc, OSError):
            return Problem(f"cannot open {self.path}: {exc.strerror or text}", "check `path` and its permissions")
        if not isinstance(exc, duckdb.Error):
            return Problem(f"{type(exc).__name__}: {text}", "")
        if isinstance(exc, duckdb.IOException) and "lock" in text.lower():
            return Problem(text, "another process has the database file open: close it, or retry", transient=True)
        if isinstance(exc, duckdb.TransactionException | duckdb.SerializationException):
            return Problem(text, "another transaction changed the table: retry", transient=True)
        if isinstance(exc, duckdb.ConstraintException):
            return Problem(text, "the rows break a key or NOT NULL constraint of the table: fix or filter them "
                                 "upstream")
        if isinstance(exc, duckdb.ConversionException | duckdb.InvalidInputException | duckdb.OutOfRangeException):
            return Problem(text, "a value does not fit its column: fix or cast it upstream")
        if isinstance(exc, duckdb.BinderException) and "ON CONFLICT" in text:
            return Problem(text, "the table needs a PRIMARY KEY or UNIQUE constraint on exactly primary_key")
        if isinstance(exc, duckdb.CatalogException):
            return Problem(text, "check the table and column names")
        return Problem(text, "")


def memory_connection(memory_limit: str, spill_dir: str, *, allow_external_access: bool) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that spills to `spill_dir`, never scans Python variables by name, and, unless
    `allow_external_access`, reaches nothing outside the tables registered on it."""
    import duckdb

    con = duckdb.connect(":memory:", config={"memory_limit": memory_limit, "temp_directory": spill_dir})
    con.execute("SET python_enable_replacements = false")
    con.execute("SET enable_progress_bar = false")  # stdout belongs to the CLI (`--json` is one document)
    if not allow_external_access:
        for statement in CONFINED:
            con.execute(statement)
    return con


def is_refusal(exc: duckdb.Error) -> bool:
    """Whether DuckDB refused the SQL because of the confinement."""
    import duckdb

    return isinstance(exc, duckdb.PermissionException) or "configuration has been locked" in str(exc)
