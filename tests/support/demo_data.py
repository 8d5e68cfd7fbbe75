"""Test support: the examples' movies + directors sample loaded into a MariaDB database."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.support.databases import MySQLDatabase

DIRECTORS_DDL = "director_id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, country VARCHAR(60), birth_year INT"
MOVIES_DDL = ("movie_id INT PRIMARY KEY, title VARCHAR(200) NOT NULL, director_id INT NOT NULL, release_year INT, "
              "genre VARCHAR(40), runtime_minutes INT, budget_usd BIGINT NULL, box_office_usd BIGINT NULL")


def _rows(path: Path) -> list[list[str | None]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        return [[value if value != "" else None for value in row] for row in reader]


def load_movies(db: MySQLDatabase, data_dir: Path) -> None:
    """(Re)create `directors` and `movies` from examples/data/*.csv."""
    connection = db.connect()
    with connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS movies, directors")
        cursor.execute(f"CREATE TABLE directors ({DIRECTORS_DDL})")
        cursor.execute(f"CREATE TABLE movies ({MOVIES_DDL})")
        cursor.executemany("INSERT INTO directors VALUES (%s, %s, %s, %s)", _rows(data_dir / "directors.csv"))
        cursor.executemany("INSERT INTO movies VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", _rows(data_dir / "movies.csv"))
