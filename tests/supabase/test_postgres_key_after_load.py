"""postgres.writer creates a table without its primary key, loads it, then adds the key (one index build):
the table ends with the key, and duplicate or NULL keys still fail the step and leave nothing behind."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from osiris_core.errors import DriverError
from osiris_drivers.postgres.writer.driver import PostgresWriter, PostgresWriterConfig
from tests.support.databases import PostgresDatabase
from tests.support.runs import Recorder


def _write(pg_db: PostgresDatabase, tmp_path: Path, table: str, data: pa.Table, mode: str) -> None:
    config = PostgresWriterConfig.model_validate({
        "host": pg_db.host, "port": pg_db.port, "database": pg_db.database, "user": pg_db.user,
        "table": table, "write_mode": mode, "primary_key": ["id", "part"]})
    PostgresWriter().run(step_id="w", config=config, inputs={"src": data}, ctx=Recorder().context(tmp_path))


def _key(pg_db: PostgresDatabase, table: str) -> list[str] | None:
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
        row = cursor.fetchone()
        if not (row and row[0]):
            return None
        cursor.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                       "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary "
                       "ORDER BY array_position(i.indkey::int2[], a.attnum)", (table,))
        return [str(r[0]) for r in cursor.fetchall()]


@pytest.mark.parametrize("mode", ["append", "replace", "upsert"])
def test_a_created_table_has_its_primary_key(pg_db: PostgresDatabase, tmp_path: Path, mode: str) -> None:
    table = f"keyed_{uuid.uuid4().hex[:8]}"
    data = pa.table({"id": pa.array([1, 1, 2], pa.int64()), "part": ["a", "b", "a"], "v": [1.5, None, 3.0]})
    _write(pg_db, tmp_path, table, data, mode)
    assert _key(pg_db, table) == ["id", "part"]
    _write(pg_db, tmp_path, table, data, "upsert")  # the key is what ON CONFLICT needs
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        assert cursor.fetchone() == (3,)
        cursor.execute(f"DROP TABLE {table}")


@pytest.mark.parametrize(("ids", "parts"), [([1, 1], ["a", "a"]), ([1, None], ["a", "b"])],
                         ids=["duplicate key", "null key"])
@pytest.mark.parametrize("mode", ["append", "replace"])
def test_a_bad_key_fails_the_step_and_creates_nothing(pg_db: PostgresDatabase, tmp_path: Path, mode: str,
                                                      ids: list[int | None], parts: list[str]) -> None:
    table = f"badkey_{uuid.uuid4().hex[:8]}"
    data = pa.table({"id": pa.array(ids, pa.int64()), "part": parts})
    with pytest.raises(DriverError) as caught:
        _write(pg_db, tmp_path, table, data, mode)
    assert "unchanged" in str(caught.value.render())
    assert _key(pg_db, table) is None
