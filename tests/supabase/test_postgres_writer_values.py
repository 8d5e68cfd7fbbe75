"""postgres.writer's COPY path: bytes of every Arrow binary type arrive exactly (hex-encoded without per-row Python),
through every write mode."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from osiris_drivers.postgres.writer.driver import PostgresWriter, PostgresWriterConfig
from tests.support.databases import PostgresDatabase
from tests.support.runs import Recorder

BLOBS: list[bytes | None] = [b"\x00\n\\\",\r\t\xff", b"", None, b"\\x41", b"NULL"]


@pytest.mark.parametrize("mode", ["append", "upsert", "replace"])
def test_binary_values_arrive_exactly(pg_db: PostgresDatabase, tmp_path: Path, mode: str) -> None:
    table = pa.table({
        "id": pa.array(range(5), pa.int64()),
        "b": pa.array(BLOBS, pa.binary()),
        "lb": pa.array(BLOBS, pa.large_binary()),
        "fixed": pa.array([b"ab", b"\x00\xff", None, b"\\x", b"zz"], pa.binary(2)),
    }).slice(1)  # a sliced input: offsets that do not start at zero
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS blobs")
    config = PostgresWriterConfig.model_validate({
        "host": pg_db.host, "port": pg_db.port, "database": pg_db.database, "user": pg_db.user,
        "table": "blobs", "write_mode": mode, "primary_key": ["id"]})
    PostgresWriter().run(step_id="w", config=config, inputs={"src": table}, ctx=Recorder().context(tmp_path))
    with pg_db.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT id, b, lb, fixed FROM blobs ORDER BY id")
        rows = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cursor.fetchall()]
    assert rows == list(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))
