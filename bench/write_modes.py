"""The P1 write-mode workloads of `bench/p1.py` beyond the copy: upsert, scd2 and an incremental run, each with
the hand-written SQL that does the same work, and the set-up that gives every timed run the same starting point.

Before each timed run the target is rebuilt from a seed table (same rows, same physical state: packed pages,
vacuumed, analysed) and a CHECKPOINT is taken, so no contender inherits another's dead rows, free space or
pending full-page writes. The hand-written SQL reads from `mariadb` as text and stages into an unlogged table in
one `psql` session, as a person would write it:

- **upsert**: `INSERT … SELECT * FROM stage ON CONFLICT (id) DO UPDATE SET <every column>` (1M rows into a
  table holding the same 1M rows).
- **scd2**: one `UPDATE … SET valid_to = now() … WHERE current AND the columns differ`, then one `INSERT` of a
  new current version for every input key without one (1M rows into the 1M current versions, `--changed` of
  them different).
- **incremental**: read the last cursor from a state table, `SELECT … WHERE updated_at >= cursor` from MariaDB
  (an index on `updated_at`), stage, upsert, and store the new cursor in the same transaction (a 1M-row source
  whose `--changed` rows moved past the cursor).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg2
import pymysql
import yaml

from bench.copy_bench import MYSQL_DATABASE, MYSQL_HOST, MYSQL_PORT, MYSQL_USER, PG_COLUMNS, PG_DSN

COLUMN_NAMES = ("id", "title", "director_id", "release_year", "genre", "runtime_minutes", "budget_usd",
                "box_office_usd", "rating", "released", "updated_at")
VALUES = COLUMN_NAMES[1:]
UNKEYED_COLUMNS = PG_COLUMNS.replace(" PRIMARY KEY", "")
MARIADB = f"mariadb --quick -B -N -h {MYSQL_HOST} -u {MYSQL_USER} {MYSQL_DATABASE}"


def pg(*statements: str) -> list[tuple[Any, ...]]:
    """Run statements in autocommit (VACUUM, CHECKPOINT allowed); the rows of the last."""
    connection = psycopg2.connect(PG_DSN)
    connection.autocommit = True
    rows: list[tuple[Any, ...]] = []
    try:
        with connection.cursor() as cursor:  # not `with connection`: that opens a transaction block
            cursor.execute("SET client_min_messages = warning")
            for statement in statements:
                cursor.execute(statement)
                rows = list(cursor.fetchall()) if cursor.description else []
    finally:
        connection.close()
    return rows


def mysql(*statements: str) -> None:
    connection = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password="",
                                 database=MYSQL_DATABASE, autocommit=True)
    with connection, connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def restore(table: str, seed: str) -> None:
    """`table` rebuilt as a copy of `seed` (its indexes too), vacuumed and analysed, then a CHECKPOINT."""
    pg(f"DROP TABLE IF EXISTS {table}", f"CREATE TABLE {table} (LIKE {seed} INCLUDING ALL)",
       f"INSERT INTO {table} SELECT * FROM {seed}", f"VACUUM ANALYZE {table}", "CHECKPOINT")


def seed_from(table: str, seed: str) -> None:
    """Keep `table`'s rows, indexes and constraints as `seed`."""
    pg(f"DROP TABLE IF EXISTS {seed}", f"CREATE TABLE {seed} (LIKE {table} INCLUDING ALL)",
       f"INSERT INTO {seed} SELECT * FROM {table}")


def count(sql: str) -> int:
    return int(pg(sql)[0][0])


def psql_script(query: str, script: str) -> list[str]:
    """`mariadb -e query | psql -f script` (the script reads the rows with `\\copy … FROM pstdin`)."""
    quoted = script.replace("'", "'\\''")
    return [f"{MARIADB} -e \"{query}\"", "|", "psql", "-q", "-v", "ON_ERROR_STOP=1", PG_DSN, "-f",
            f"<(printf '%s' '{quoted}')"]


def stage_script(*statements: str) -> str:
    return ("SET client_min_messages = warning;\nBEGIN;\n"
            f"CREATE UNLOGGED TABLE hand_stage ({UNKEYED_COLUMNS});\n\\copy hand_stage FROM pstdin\n"
            + "".join(f"{s};\n" for s in statements) + "DROP TABLE hand_stage;\nCOMMIT;\n")


def upsert_sql(target: str) -> str:
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in VALUES)
    return f"INSERT INTO {target} SELECT * FROM hand_stage ON CONFLICT (id) DO UPDATE SET {updates}"


def osiris_pipeline(workdir: Path, name: str, source: str, target: str, write_mode: str,
                    incremental: bool = False) -> Path:
    extract: dict[str, Any] = {"connection": "@mysql.bench", "table": source}
    if incremental:
        extract["incremental"] = {"cursor": "updated_at"}
    steps = [{"id": "extract", "component": "mysql.extractor", "mode": "read", "config": extract},
             {"id": "load", "component": "postgres.writer", "mode": "write", "needs": ["extract"],
              "config": {"connection": "@postgres.bench", "table": target, "write_mode": write_mode,
                         "primary_key": ["id"], "create_if_missing": True}}]
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"oml_version": "0.1.0", "name": name, "steps": steps}))
    return path


def run_untimed(argv: Sequence[str], env: dict[str, str], cwd: Path) -> None:
    subprocess.run(list(argv), env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


# ----------------------------------------------------------------------------------------------------- upsert

def upsert_setup(rows: int) -> None:
    """`upsert_seed`: the N rows of `movies_big` in PostgreSQL, keyed (the target both contenders start from)."""
    pg("DROP TABLE IF EXISTS upsert_seed", f"CREATE TABLE upsert_seed ({PG_COLUMNS})")
    subprocess.run(["bash", "-c", f"{MARIADB} -e 'SELECT * FROM movies_big' | psql -q {PG_DSN} -c "
                                  "'\\copy upsert_seed FROM STDIN'"], check=True)
    assert count("SELECT count(*) FROM upsert_seed") == rows


def upsert_pipe() -> list[str]:
    return psql_script("SELECT * FROM movies_big", stage_script(upsert_sql("movies_pipe")))


# ------------------------------------------------------------------------------------------------------- scd2

SCD2_TARGET, SCD2_HAND = "movies_scd2", "movies_scd2_hand"


def scd2_setup(rows: int, changed_every: int, first_run: list[str], env: dict[str, str], cwd: Path) -> None:
    """Seeds for both contenders: the current versions of the N rows, every k-th one older (a different title),
    so that run closes and re-inserts N/k versions. Osiris's seed comes from its own first run (its hashes); the
    older rows get a hash that matches nothing."""
    pg(f"DROP TABLE IF EXISTS {SCD2_TARGET}")
    run_untimed(first_run, env, cwd)
    assert count(f"SELECT count(*) FROM {SCD2_TARGET}") == rows
    older = f"title = title || ' (older)' WHERE id % {changed_every} = 0"
    pg(f"UPDATE {SCD2_TARGET} SET _osiris_row_hash = 'older', {older}", f"VACUUM FULL {SCD2_TARGET}")
    seed_from(SCD2_TARGET, "scd2_seed")
    columns = ", ".join(COLUMN_NAMES)
    pg("DROP TABLE IF EXISTS scd2_hand_seed",
       f"CREATE TABLE scd2_hand_seed ({UNKEYED_COLUMNS}, valid_from TIMESTAMPTZ NOT NULL, valid_to TIMESTAMPTZ, "
       "PRIMARY KEY (id, valid_from))",
       "CREATE UNIQUE INDEX scd2_hand_seed_current ON scd2_hand_seed (id) WHERE valid_to IS NULL",
       f"INSERT INTO scd2_hand_seed SELECT {columns}, _osiris_valid_from, _osiris_valid_to FROM scd2_seed")


def scd2_pipe() -> list[str]:
    t = [f"t.{c}" for c in VALUES]
    s = [f"s.{c}" for c in VALUES]
    close = (f"UPDATE {SCD2_HAND} AS t SET valid_to = now() FROM hand_stage AS s WHERE t.id = s.id AND "
             f"t.valid_to IS NULL AND ({', '.join(t)}) IS DISTINCT FROM ({', '.join(s)})")
    insert = (f"INSERT INTO {SCD2_HAND} SELECT s.*, now(), NULL FROM hand_stage AS s WHERE NOT EXISTS "
              f"(SELECT 1 FROM {SCD2_HAND} AS t WHERE t.id = s.id AND t.valid_to IS NULL)")
    return psql_script("SELECT * FROM movies_big", stage_script(close, insert))


def scd2_check(table: str, rows: int, changed_every: int) -> None:
    versions = count(f"SELECT count(*) FROM {table}")
    current = count(f"SELECT count(*) FROM {table} WHERE {'valid_to' if table == SCD2_HAND else '_osiris_valid_to'}"
                    " IS NULL")
    assert (versions, current) == (rows + rows // changed_every, rows), f"{table}: {versions} versions, {current}"


# ------------------------------------------------------------------------------------------------ incremental

INCR_SOURCE, INCR_TARGET, INCR_HAND = "movies_incr", "movies_incr_copy", "movies_incr_hand"


def incremental_setup(rows: int, changed_every: int, first_run: list[str], env: dict[str, str], cwd: Path) -> None:
    """A MariaDB copy of `movies_big` with an index on `updated_at`; Osiris's first (full) run fills its target
    and state; then every k-th row moves past the cursor. Seeds: both targets, Osiris's state, the hand state."""
    mysql(f"DROP TABLE IF EXISTS {INCR_SOURCE}", f"CREATE TABLE {INCR_SOURCE} LIKE movies_big",
          f"ALTER TABLE {INCR_SOURCE} ADD KEY (updated_at)", f"INSERT INTO {INCR_SOURCE} SELECT * FROM movies_big")
    pg(f"DROP TABLE IF EXISTS {INCR_TARGET}", "DROP TABLE IF EXISTS _osiris_state")
    run_untimed(first_run, env, cwd)
    assert count(f"SELECT count(*) FROM {INCR_TARGET}") == rows
    mysql(f"UPDATE {INCR_SOURCE} SET title = CONCAT(title, ' (changed)'), updated_at = "
          f"TIMESTAMP('2030-01-01 00:00:00') + INTERVAL id MICROSECOND WHERE id % {changed_every} = 0")
    seed_from(INCR_TARGET, "incr_seed")
    seed_from("_osiris_state", "incr_state_seed")
    last = pg("SELECT max(updated_at) FROM incr_seed")[0][0]
    pg("DROP TABLE IF EXISTS incr_hand_state_seed", "CREATE TABLE incr_hand_state_seed (cursor TEXT NOT NULL)",
       f"INSERT INTO incr_hand_state_seed VALUES ('{last:%Y-%m-%d %H:%M:%S.%f}')")


def incremental_restore(which: str) -> None:
    if which == "a":
        restore("incr_hand_state", "incr_hand_state_seed")
        restore(INCR_HAND, "incr_seed")
    else:
        restore("_osiris_state", "incr_state_seed")
        restore(INCR_TARGET, "incr_seed")


def incremental_pipe() -> list[str]:
    """The cursor read into a shell variable, the changed rows read by it, upserted with the new cursor."""
    script = stage_script(upsert_sql(INCR_HAND),
                          "UPDATE incr_hand_state SET cursor = (SELECT to_char(max(updated_at), "
                          "'YYYY-MM-DD HH24:MI:SS.US') FROM hand_stage)")
    cursor = f"$(psql -Atq {PG_DSN} -c 'SELECT cursor FROM incr_hand_state')"
    query = f"SELECT * FROM {INCR_SOURCE} WHERE updated_at >= '{cursor}'"
    return psql_script(query, script)


def incremental_check(table: str, changed_every: int) -> None:
    changed = count(f"SELECT count(*) FROM {table} WHERE title LIKE '%(changed)'")
    assert changed > 0 and changed == count("SELECT count(*) FROM incr_seed") // changed_every, changed
