"""supabase.writer: duplicate keys in upsert input fail before the finishing transaction, naming one key, on
every data path; `dedupe: keep_last` keeps the last row of each key in input order (issue 9, finding 2)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from osiris_core.registry import ComponentRegistry
from tests.supabase.pipelines import VARIANTS, Row, Variant, pipeline, run, stage_tables, table_rows, write_connections
from tests.support.databases import PostgresDatabase
from tests.support.postgrest_server import PostgrestServer
from tests.support.runs import rows_written_metrics, step

ROWS: list[Row] = [("eu", 1, "first", "M", Decimal("1.00"), "2024-01-01 00:00:00"),
                   ("eu", 2, "other", "M", Decimal("2.00"), "2024-01-01 00:00:00"),
                   ("eu", 1, "last", "M", Decimal("3.00"), "2024-01-01 00:00:00")]
PATHS = [v for v in VARIANTS if v.name in ("copy-psycopg2", "rest-http_sql")]


@pytest.mark.parametrize("variant", PATHS, ids=[v.name for v in PATHS])
def test_duplicate_keys_fail_the_upsert_and_keep_last_keeps_the_last(
        project: Path, registry: ComponentRegistry, pg_db: PostgresDatabase, postgrest: PostgrestServer,
        variant: Variant) -> None:
    connections = write_connections(project, pg_db, postgrest, with_pg_dsn=variant.with_pg_dsn)
    table = f"dups_{variant.name.replace('-', '_')}"
    config = {"table": table, "write_mode": "upsert", "primary_key": ["region", "id"],
              "ddl_channel": variant.ddl_channel}
    refused = run(pipeline(project, "refused", ROWS, config), registry, connections, project / "logs")
    card = step(refused, "load")
    assert card.status == "failed"
    assert card.error is not None and "more than one input row has the key (region, id) = ('eu', 1)" in card.error
    with pg_db.connect() as con, con.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", (f"public.{table}",))
        assert cursor.fetchone() == (None,), "nothing was created"
    assert stage_tables(pg_db) == []

    kept = run(pipeline(project, "kept", ROWS, {**config, "dedupe": "keep_last"}), registry, connections,
               project / "logs")
    assert kept.card.status == "succeeded", step(kept, "load").error
    assert [(r[1], r[2]) for r in table_rows(pg_db, table)] == [(1, "last"), (2, "other")]
    assert rows_written_metrics(kept, "load") == [2]
