"""Incremental reads combined with the write policies, on PostgreSQL and on MariaDB (source and target in the
same family): delete_missing is refused on a partial extract (and works under --full-refresh), scd2 over several
increments, hard_delete_column, on_schema_change and duplicate keys, --full-refresh keeping scd2 history, and
`osiris state show` / the dry run of an scd2 pipeline."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from osiris_cli.main import main
from tests.incremental.support import Project, card, failed, my_extract, my_write, pg_extract, pg_write, succeeded

Step = dict[str, Any]


@dataclass
class Side:
    """One family's source table `src` and target table `dst`, both private to the test."""

    name: str
    sql: Callable[..., list[tuple[Any, ...]]]
    src: str
    dst: str
    state: str
    extract: Callable[..., Step]
    write: Callable[..., Step]
    quote: str

    def rows(self, columns: str, where: str = "") -> list[tuple[Any, ...]]:
        return self.sql(f"SELECT {columns} FROM {self.dst}{where} ORDER BY 1, 2")

    def cursor(self) -> list[tuple[Any, ...]]:
        q = self.quote
        return self.sql(f"SELECT {q}cursor{q}, {q}rows{q} FROM {self.state} WHERE step = 'read' "
                        f"AND target LIKE '%{self.dst.split('.')[-1]}'")

    def exists(self, table: str) -> bool:
        schema, name = table.split(".") if "." in table else ("test", table)
        return self.sql("SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                        f"'{schema}' AND table_name = '{name}'") == [(1,)]


def _side(proj: Project, name: str) -> Side:
    if name == "postgres":
        schema = proj.schema
        proj.pg_exec(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        return Side(name, proj.pg_exec, f"{schema}.src", f"{schema}.dst", f"{schema}._osiris_state",
                    lambda step, **inc: pg_extract(step, schema, "src", **inc),
                    lambda step, need, **cfg: pg_write(step, need, schema, "dst", **cfg), '"')
    src, dst = f"src_{proj.tag}", f"dst_{proj.tag}"
    return Side(name, proj.my_exec, src, dst, "_osiris_state",
                lambda step, **inc: my_extract(step, src, **inc),
                lambda step, need, **cfg: my_write(step, need, dst, **cfg), "`")


@pytest.fixture(params=["postgres", "mysql"])
def side(request: pytest.FixtureRequest, proj: Project) -> Side:
    s = _side(proj, str(request.param))
    s.sql(f"CREATE TABLE {s.src} (id int PRIMARY KEY, v varchar(20), updated_at int)")
    return s


def _pipeline(side: Side, **write: Any) -> list[Step]:
    return [side.extract("read"), side.write("load", "read", **write)]


def _cursor(side: Side) -> tuple[str, int]:
    (cursor, rows), = side.cursor()
    return str(cursor), int(rows)


# ------------------------------------------------------------------------------------------- 1. delete_missing


@pytest.mark.parametrize(("mode", "delete"), [("upsert", "hard"), ("upsert", "soft"), ("scd2", "soft")])
def test_delete_missing_is_refused_on_an_increment_before_anything_is_written(
        proj: Project, side: Side, mode: str, delete: str) -> None:
    side.sql(f"INSERT INTO {side.src} VALUES (1, 'a', 1), (2, 'b', 2)")
    steps = _pipeline(side, write_mode=mode, delete_missing=delete)
    run = proj.run(steps)
    error = failed(run)
    assert f"step 'load' sets delete_missing: {delete}, but its upstream 'read' reads incrementally" in error
    assert "\n" not in error
    assert card(run, "read").status == "skipped" and card(run, "load").status == "skipped"
    assert not side.exists(side.dst) and not side.exists(side.state)
    # --full-refresh reads everything: delete_missing is right then, and works
    succeeded(proj.run(steps, full_refresh=True))
    side.sql(f"DELETE FROM {side.src} WHERE id = 2", f"INSERT INTO {side.src} VALUES (3, 'c', 3)")
    assert "delete_missing needs a full extract" in failed(proj.run(steps))
    assert _cursor(side) == ('[["int","2"]]', 2)  # the refused run moved nothing
    again = succeeded(proj.run(steps, full_refresh=True))
    assert _cursor(side) == ('[["int","3"]]', 2)
    if mode == "scd2":
        assert side.rows("id, v", " WHERE _osiris_valid_to IS NULL") == [(1, "a"), (3, "c")]
        assert side.rows("id, v", " WHERE _osiris_valid_to IS NOT NULL") == [(2, "b")]
    elif delete == "soft":
        assert side.rows("id, _osiris_deleted_at IS NULL") == [(1, True), (2, False), (3, True)]
    else:
        assert side.rows("id, v") == [(1, "a"), (3, "c")]
        return
    metrics = (proj.path / "logs" / again.card.session_id / "metrics.jsonl").read_text(encoding="utf-8")
    assert any(m.get("metric") == ("rows_closed" if mode == "scd2" else "rows_deleted") and m.get("value") == 1
               for m in map(json.loads, metrics.splitlines()))


def test_delete_missing_behind_a_processor_is_refused_too(proj: Project, side: Side) -> None:
    side.sql(f"INSERT INTO {side.src} VALUES (1, 'a', 1)")
    steps = [side.extract("read"),
             {"id": "shape", "component": "duckdb.processor", "mode": "transform", "needs": ["read"],
              "config": {"query": "SELECT * FROM read"}},
             side.write("load", "shape", delete_missing="hard")]
    error = failed(proj.run(steps))
    assert "step 'load' sets delete_missing: hard, but its upstream 'read' reads incrementally" in error


def test_dry_run_shows_the_refusal(proj: Project, side: Side, capsys: pytest.CaptureFixture[str]) -> None:
    proj.write_pipeline(_pipeline(side, delete_missing="hard"))
    capsys.readouterr()
    assert main(["run", "inc.yaml", "--dry-run", "--json"]) == 1
    plan = json.loads(capsys.readouterr().out)
    read = next(s for s in plan["steps"] if s["step"] == "read")
    assert plan["ok"] is False and "sets delete_missing: hard" in read["error"]
    assert main(["run", "inc.yaml", "--dry-run", "--json", "--full-refresh"]) == 0
    load = next(s for s in json.loads(capsys.readouterr().out)["steps"] if s["step"] == "load")
    assert load["write_mode"] == "replace"  # as the --full-refresh run writes it


# ----------------------------------------------------------------------------------------------- 2. scd2


def test_scd2_over_three_increments_versions_only_what_changed(proj: Project, side: Side) -> None:
    side.sql(f"INSERT INTO {side.src} VALUES (1, 'a', 1), (2, 'b', 1), (3, 'c', 2)")
    steps = _pipeline(side, write_mode="scd2")
    first = succeeded(proj.run(steps))
    assert card(first, "read").incremental.rows_read == 3  # type: ignore[union-attr]
    assert _cursor(side) == ('[["int","2"]]', 3)
    # run 2: key 2 changes; key 3 is re-read at the boundary unchanged; key 1 is not read and stays current
    side.sql(f"UPDATE {side.src} SET v = 'b2', updated_at = 3 WHERE id = 2")
    second = succeeded(proj.run(steps))
    assert card(second, "read").incremental.rows_read == 2  # type: ignore[union-attr]
    assert side.rows("id, v", " WHERE _osiris_valid_to IS NULL") == [(1, "a"), (2, "b2"), (3, "c")]
    assert side.rows("id, v", " WHERE _osiris_valid_to IS NOT NULL") == [(2, "b")]
    assert _cursor(side) == ('[["int","3"]]', 2)
    # run 3: nothing changed but a tie at the boundary (key 4 at cursor 3): key 2 re-read with the same hash
    side.sql(f"INSERT INTO {side.src} VALUES (4, 'd', 3)")
    third = succeeded(proj.run(steps))
    assert card(third, "read").incremental.rows_read == 2  # type: ignore[union-attr]
    assert side.rows("id, count(*)", " GROUP BY id") == [(1, 1), (2, 2), (3, 1), (4, 1)]
    assert side.rows("id, v", " WHERE _osiris_valid_to IS NULL") == [(1, "a"), (2, "b2"), (3, "c"), (4, "d")]
    assert _cursor(side) == ('[["int","3"]]', 2)


# --------------------------------------------------------------------------------------- 3. hard_delete_column


@pytest.mark.parametrize("mode", ["upsert", "scd2"])
def test_hard_delete_column_deletes_the_flagged_keys_of_an_increment(proj: Project, side: Side, mode: str) -> None:
    side.sql(f"ALTER TABLE {side.src} ADD COLUMN is_deleted boolean NOT NULL DEFAULT FALSE",
             f"INSERT INTO {side.src} (id, v, updated_at) VALUES (1, 'a', 1), (2, 'b', 1), (3, 'c', 1)")
    steps = _pipeline(side, write_mode=mode, hard_delete_column="is_deleted")
    succeeded(proj.run(steps))
    side.sql(f"UPDATE {side.src} SET is_deleted = TRUE, updated_at = 2 WHERE id = 2",
             f"UPDATE {side.src} SET v = 'c2', updated_at = 2 WHERE id = 3")
    succeeded(proj.run(steps))
    assert _cursor(side) == ('[["int","2"]]', 3)  # the boundary key 1 again, 2 and 3
    if mode == "upsert":
        assert side.rows("id, v") == [(1, "a"), (3, "c2")]
        # --full-refresh keeps the upsert (replace would refuse hard_delete_column): the flagged key stays deleted
        succeeded(proj.run(steps, full_refresh=True))
        assert side.rows("id, v") == [(1, "a"), (3, "c2")]
        return
    assert side.rows("id, v", " WHERE _osiris_valid_to IS NULL") == [(1, "a"), (3, "c2")]
    assert side.rows("id, v", " WHERE _osiris_valid_to IS NOT NULL") == [(2, "b"), (3, "c")]


# -------------------------------------------------------------------------------------- 4. on_schema_change


def test_a_column_added_to_the_source_arrives_with_the_state(proj: Project, side: Side) -> None:
    side.sql(f"INSERT INTO {side.src} VALUES (1, 'a', 1), (2, 'b', 1)")
    steps = _pipeline(side)
    succeeded(proj.run(steps))
    side.sql(f"ALTER TABLE {side.src} ADD COLUMN note varchar(20)",
             f"UPDATE {side.src} SET note = 'n', updated_at = 2 WHERE id = 2")
    succeeded(proj.run(steps))
    assert side.rows("id, v, note") == [(1, "a", None), (2, "b", "n")]
    assert _cursor(side) == ('[["int","2"]]', 2)  # key 1 again at the boundary


def test_on_schema_change_fail_writes_nothing_and_keeps_the_state(proj: Project, side: Side) -> None:
    side.sql(f"INSERT INTO {side.src} VALUES (1, 'a', 1), (2, 'b', 1)")
    steps = _pipeline(side, on_schema_change="fail")
    succeeded(proj.run(steps))
    side.sql(f"ALTER TABLE {side.src} ADD COLUMN note varchar(20)",
             f"UPDATE {side.src} SET v = 'b2', note = 'n', updated_at = 2 WHERE id = 2")
    error = failed(proj.run(steps))
    assert "the input's columns differ" in error and "added: note" in error
    assert side.rows("*") == [(1, "a", 1), (2, "b", 1)]
    assert _cursor(side) == ('[["int","1"]]', 2)


# ------------------------------------------------------------------------------------------ 5. duplicate keys


def test_a_key_updated_twice_between_runs_is_one_row_of_a_table_read(proj: Project, side: Side) -> None:
    side.sql(f"INSERT INTO {side.src} VALUES (1, 'a', 1), (2, 'b', 1)")
    steps = _pipeline(side)
    succeeded(proj.run(steps))
    side.sql(f"UPDATE {side.src} SET v = 'b2', updated_at = 2 WHERE id = 2",
             f"UPDATE {side.src} SET v = 'b3', updated_at = 3 WHERE id = 2")
    succeeded(proj.run(steps))  # no dedupe needed: the source holds one row per key
    assert side.rows("id, v") == [(1, "a"), (2, "b3")]


def test_duplicate_keys_from_a_join_fail_naming_the_key_unless_dedupe(proj: Project, side: Side) -> None:
    side.sql(f"CREATE TABLE {side.src}_log (id int, v varchar(20), updated_at int)",
             f"INSERT INTO {side.src}_log VALUES (1, 'a', 1), (2, 'b', 2), (2, 'b2', 3)")
    steps = _pipeline(side)
    del steps[0]["config"]["table"]
    steps[0]["config"]["query"] = f"SELECT id, v, updated_at FROM {side.src}_log ORDER BY updated_at"
    error = failed(proj.run(steps))
    assert "more than one input row has the key id = 2" in error and "dedupe: keep_last" in error
    steps[1]["config"]["dedupe"] = "keep_last"
    succeeded(proj.run(steps))
    assert side.rows("id, v") == [(1, "a"), (2, "b2")]
    assert _cursor(side) == ('[["int","3"]]', 3)


# --------------------------------------------------------------------------------- 6. --full-refresh and scd2


def test_full_refresh_keeps_scd2_history_and_resyncs(proj: Project, side: Side) -> None:
    side.sql(f"INSERT INTO {side.src} VALUES (1, 'a', 1), (2, 'b', 1)")
    steps = _pipeline(side, write_mode="scd2")
    succeeded(proj.run(steps))
    side.sql(f"UPDATE {side.src} SET v = 'b2', updated_at = 2 WHERE id = 2")
    succeeded(proj.run(steps))
    # a change whose cursor went backwards: only a full read sees it
    side.sql(f"UPDATE {side.src} SET v = 'a2', updated_at = 0 WHERE id = 1")
    refresh = succeeded(proj.run(steps, full_refresh=True))
    assert card(refresh, "read").incremental.rows_read == 2  # type: ignore[union-attr]
    assert side.rows("id, v", " WHERE _osiris_valid_to IS NOT NULL") == [(1, "a"), (2, "b")]
    assert side.rows("id, v", " WHERE _osiris_valid_to IS NULL") == [(1, "a2"), (2, "b2")]
    assert _cursor(side) == ('[["int","2"]]', 2)


# --------------------------------------------------------------------------------- 7. state show and dry run


def test_state_show_and_dry_run_of_an_scd2_pipeline(proj: Project, side: Side,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    side.sql(f"INSERT INTO {side.src} VALUES (1, 'a', 1), (2, 'b', 2)")
    steps = _pipeline(side, write_mode="scd2")
    proj.write_pipeline(steps)

    def plan(*flags: str) -> dict[str, dict[str, Any]]:
        capsys.readouterr()
        assert main(["run", "inc.yaml", "--dry-run", "--json", *flags]) == 0
        return {s["step"]: s for s in json.loads(capsys.readouterr().out)["steps"]}

    before = plan()
    assert before["read"]["incremental"] == "full (no state yet)" and before["load"]["action"] == "create"
    assert main(["run", "inc.yaml"]) == 0
    after = plan()
    assert after["read"]["incremental"] == 'from [["int","2"]]'
    assert after["load"]["action"] == "scd2" and "close their current version" in after["load"]["detail"]
    refresh = plan("--full-refresh")
    assert refresh["read"]["incremental"] == "full (--full-refresh)"
    assert refresh["load"]["action"] == "scd2"  # the history is kept: no replace
    capsys.readouterr()
    assert main(["state", "show", "inc.yaml", "--json"]) == 0
    (state,) = json.loads(capsys.readouterr().out)["states"]
    assert (state["step"], state["cursor"], state["rows"]) == ("read", '[["int","2"]]', 2)
