"""Type fidelity cases a demanding user tries: values the declared type does not say everything about."""

from __future__ import annotations

import pyarrow as pa
import pytest

from osiris_core.errors import DriverError
from osiris_drivers.mysql.extractor.driver import MySQLExtractor
from tests.conformance.connectors import (
    Resources,
    by_name,
    mysql_fields,
    read_mysql,
    read_output,
    run_driver,
    unique,
)


def test_a_mysql_tinyint1_holding_other_than_0_or_1_is_refused_not_read_as_true(resources: Resources) -> None:
    """TINYINT(1) is MySQL's BOOLEAN but holds -128..127: 5 was read as true and copied back to MySQL as 1."""
    table = unique("my_tiny")
    with resources.mysql.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE `{table}` (id INT PRIMARY KEY, f TINYINT(1))")
        cursor.execute(f"INSERT INTO `{table}` VALUES (1, 0), (2, 1), (3, NULL)")
    assert read_mysql(resources, table).column("f").to_pylist() == [False, True, None]
    with resources.mysql.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO `{table}` VALUES (4, 5)")
    with pytest.raises(DriverError) as info:
        read_mysql(resources, table)
    assert "TINYINT(1)) column holds 5, which is not a boolean" in info.value.message
    query = f"SELECT id, CAST(f AS SIGNED) AS f FROM `{table}` ORDER BY id"
    data = read_output(run_driver(MySQLExtractor(), {**mysql_fields(resources), "query": query}, resources))
    assert pa.types.is_integer(data.schema.field("f").type)
    assert data.column("f").to_pylist() == [0, 1, None, 5]


def test_a_decimal_wider_than_duckdb_holds_is_named_before_the_write(resources: Resources) -> None:
    """MySQL's DECIMAL(65,30) into DuckDB failed with DuckDB's 'Unsupported Internal Arrow Type for Decimal'."""
    table = unique("my_wide")
    with resources.mysql.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE `{table}` (id INT PRIMARY KEY, n DECIMAL(65,30))")
        cursor.execute(f"INSERT INTO `{table}` VALUES (1, 1.5)")
    with pytest.raises(DriverError) as info:
        by_name("duckdb").write(resources, unique("wide"), read_mysql(resources, table), "replace", ["id"])
    assert "cannot write to DuckDB: column 'n': decimal256(65, 30) has more digits" in info.value.message
