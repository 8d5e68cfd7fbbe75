"""Test support: the examples' movies + directors sample loaded into MariaDB by examples/mysql_sample.sql."""

from __future__ import annotations

from pathlib import Path

from tests.support.databases import MySQLDatabase


def sql_statements(script: str) -> list[str]:
    """The statements of a simple SQL script (no `;` inside literals), comments dropped."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def load_movies(db: MySQLDatabase, examples_dir: Path) -> None:
    """Run examples/mysql_sample.sql in `db`; its LOAD DATA paths are relative to the examples' parent."""
    connection = db.connect()
    with connection, connection.cursor() as cursor:
        for statement in sql_statements((examples_dir / "mysql_sample.sql").read_text(encoding="utf-8")):
            cursor.execute(statement.replace("'examples/", f"'{examples_dir}/"))
