"""supabase.writer: every write_mode on every data path x DDL channel, twice in a row, exact contents."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from osiris_core.registry import ComponentRegistry
from tests.supabase.pipelines import VARIANTS, Row, Variant, pipeline, run, stage_tables, table_rows, write_connections
from tests.support.databases import PostgresDatabase
from tests.support.postgrest_server import PostgrestServer

FIRST: list[Row] = [
    ("eu", 1, "first", "A", Decimal("10.50"), "2024-01-01 00:00:00"),
    ("eu", 2, "second", "B", Decimal("20.00"), "2024-01-02 00:00:00"),
    ("us", 1, "third", "C", Decimal("-3.25"), "2024-01-03 12:30:00"),
]
SECOND: list[Row] = [
    ("eu", 2, "second v2", "B2", Decimal("21.00"), "2024-02-02 00:00:00"),
    ("us", 7, "new", "D", Decimal("0.01"), "2024-02-07 00:00:00"),
]


def as_db(rows: list[Row]) -> list[tuple[object, ...]]:
    return sorted(rows, key=lambda r: (r[0], r[1]))


EXPECTED_AFTER_SECOND = {
    "append": as_db(FIRST + SECOND),
    "upsert": as_db([FIRST[0], SECOND[0], FIRST[2], SECOND[1]]),
    "replace": as_db(SECOND),
}


@pytest.mark.parametrize("mode", ["append", "upsert", "replace"])
@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_mode_on_every_channel_twice(variant: Variant, mode: str, project: Path, registry: ComponentRegistry,
                                     pg_db: PostgresDatabase, postgrest: PostgrestServer) -> None:
    connections = write_connections(project, pg_db, postgrest, with_pg_dsn=variant.with_pg_dsn)
    table = f"t_{variant.name.replace('-', '_')}_{mode}"
    config = {"table": table, "write_mode": mode, "create_if_missing": True, "ddl_channel": variant.ddl_channel,
              "batch_size": 2, "primary_key": [] if mode == "append" else ["region", "id"]}
    first = run(pipeline(project, "one", FIRST, config), registry, connections, project / "logs")
    assert first.exit_code == 0, first.card.error
    assert table_rows(pg_db, table) == as_db(FIRST)
    assert first.card.steps[-1].rows_out == 3
    second = run(pipeline(project, "two", SECOND, config), registry, connections, project / "logs")
    assert second.exit_code == 0, second.card.error
    assert table_rows(pg_db, table) == EXPECTED_AFTER_SECOND[mode]
    assert second.card.steps[-1].rows_out == 2
    assert stage_tables(pg_db) == []
    events = [json.loads(line) for line in (second.session.path / "events.jsonl").read_text().splitlines()]
    plan = next(e for e in events if e["event"] == "write_plan")
    assert plan["data_path"] == ("copy" if variant.with_pg_dsn else "postgrest")
    expected_channel = variant.ddl_channel if variant.ddl_channel != "auto" else (
        "psycopg2" if variant.with_pg_dsn else "http_sql")
    assert plan["ddl_channel"] == expected_channel
