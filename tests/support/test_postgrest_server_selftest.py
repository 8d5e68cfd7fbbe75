"""Self-test of the PostgREST-compatible test server, driven through the real supabase-py client."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import psycopg
import pytest
from postgrest import APIError, APIResponse
from postgrest.types import CountMethod, ReturnMethod
from psycopg import sql
from supabase import Client, ClientOptions, create_client

from tests.support.postgrest_server import PostgrestServer
from tests.support.supabase_platform import sign_jwt

KEY = "selftest-service-key"
PG_DSN = os.environ.get("OSIRIS_PG_DSN", "host=127.0.0.1 port=5432 dbname=test")


def run_sql(conn: psycopg.Connection[Any], query: str) -> None:
    conn.execute(query.encode())


def post_json(url: str, payload: object, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return int(err.code), json.loads(err.read() or b"null")


def sql_endpoint(server: PostgrestServer, query: str, key: str = KEY) -> tuple[int, Any]:
    return post_json(server.sql_url, {"query": query}, {"Authorization": f"Bearer {key}"})


@pytest.fixture
def admin() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        yield conn


@pytest.fixture
def schema(admin: psycopg.Connection[Any]) -> Iterator[str]:
    """A throwaway schema, dropped (with its tables) after the test."""
    name = f"pgrst_selftest_{uuid.uuid4().hex[:12]}"
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def wait_for_table(server: PostgrestServer, name: str) -> None:
    deadline = time.monotonic() + 10
    while not any(t.name == name for t in server.tables()):
        assert time.monotonic() < deadline, f"schema cache never learnt about {name}"
        time.sleep(0.05)


def rows(response: APIResponse) -> list[dict[str, Any]]:
    """The response's rows, typed for indexing."""
    assert isinstance(response.data, list)
    return [dict(cast(dict[str, Any], row)) for row in response.data]


def make_client(server: PostgrestServer, schema: str, key: str = KEY) -> Client:
    return create_client(server.url, key, options=ClientOptions(schema=schema))


def test_insert_select_filters_and_pagination(admin: psycopg.Connection[Any], schema: str) -> None:
    run_sql(
        admin,
        f"CREATE TABLE {schema}.items (id int PRIMARY KEY, name text NOT NULL, price numeric, "
        f"created timestamptz, active boolean DEFAULT true)",
    )
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema, api_key=KEY) as server:
        client = make_client(server, schema)
        payload = [
            {"id": i, "name": f"n{i}", "price": i * 1.5, "created": f"2024-01-0{i}T00:00:00Z"}
            for i in range(1, 6)
        ]
        inserted = client.table("items").insert(payload).execute()
        assert [r["id"] for r in rows(inserted)] == [1, 2, 3, 4, 5]
        assert rows(inserted)[0]["created"] == "2024-01-01T00:00:00+00:00"
        assert rows(inserted)[1]["price"] == 3.0
        # Columns absent from the whole payload are not inserted: they get their default.
        assert rows(inserted)[0]["active"] is True
        # default_to_null (the default): a key missing from some rows only is inserted as NULL ...
        mixed = [{"id": 6, "name": "n6", "active": False}, {"id": 7, "name": "n7"}]
        assert [r["active"] for r in rows(client.table("items").insert(mixed).execute())] == [False, None]
        # ... while missing=default leaves it to the column default.
        mixed = [{"id": 8, "name": "n8", "active": False}, {"id": 9, "name": "n9"}]
        extra = client.table("items").insert(mixed, default_to_null=False).execute()
        assert [r["active"] for r in rows(extra)] == [False, True]
        minimal = (
            client.table("items").insert({"id": 10, "name": "n10"}, returning=ReturnMethod.minimal).execute()
        )
        assert minimal.data == []

        eq = client.table("items").select("id,name").eq("name", "n2").execute()
        assert eq.data == [{"id": 2, "name": "n2"}]
        in_ = client.table("items").select("id").in_("id", [1, 3, 99]).order("id", desc=True).execute()
        assert in_.data == [{"id": 3}, {"id": 1}]
        aliased = client.table("items").select("ident:id,price::text").eq("id", 3).single().execute()
        assert aliased.data == {"ident": 3, "price": "4.5"}

        page = client.table("items").select("id", count=CountMethod.exact).order("id").range(2, 3).execute()
        assert page.data == [{"id": 3}, {"id": 4}]
        assert page.count == 10
        last = server.log[-1]
        assert last.status == 206
        assert "offset=2" in last.query
        assert "limit=2" in last.query

        with pytest.raises(APIError) as bad_value:
            client.table("items").select("*").eq("id", "not-a-number").execute()
        assert bad_value.value.code == "22P02"
        assert server.log[-1].status == 400

        updated = client.table("items").update({"name": "renamed"}).eq("id", 1).execute()
        assert rows(updated)[0]["name"] == "renamed"


def test_range_header_and_content_range(schema: str, admin: psycopg.Connection[Any]) -> None:
    run_sql(
        admin,
        f"CREATE TABLE {schema}.t (id int PRIMARY KEY); INSERT INTO {schema}.t SELECT generate_series(1, 10)",
    )
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema) as server:
        url = f"{server.rest_url}/t?select=id&order=id"
        request = urllib.request.Request(
            url,
            headers={
                "Range": "2-4",
                "Range-Unit": "items",
                "Prefer": "count=exact",
                "Accept-Profile": schema,
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 206
            assert response.headers["Content-Range"] == "2-4/10"
            assert json.loads(response.read()) == [{"id": 3}, {"id": 4}, {"id": 5}]
        with urllib.request.urlopen(f"{url}&id=gt.100", timeout=30) as response:
            assert response.headers["Content-Range"] == "*/*"


def test_upsert_with_composite_key(admin: psycopg.Connection[Any], schema: str) -> None:
    run_sql(admin, f"CREATE TABLE {schema}.pairs (a int, b text, v numeric, note text, PRIMARY KEY (a, b))")
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema, api_key=KEY) as server:
        table = make_client(server, schema).table("pairs")
        table.insert([{"a": 1, "b": "x", "v": 1, "note": "keep"}, {"a": 1, "b": "y", "v": 2}]).execute()

        upserted = table.upsert(
            [{"a": 1, "b": "x", "v": 10}, {"a": 2, "b": "x", "v": 20}], on_conflict="a,b"
        ).execute()
        assert sorted((r["a"], r["b"], r["v"]) for r in rows(upserted)) == [(1, "x", 10), (2, "x", 20)]
        post = server.log[-1]
        assert post.headers["prefer"] == "return=representation,resolution=merge-duplicates"
        assert "on_conflict=a%2Cb" in post.query

        ignored = table.upsert(
            [{"a": 1, "b": "y", "v": 99}], on_conflict="a,b", ignore_duplicates=True
        ).execute()
        assert ignored.data == []

        final = table.select("a,b,v,note").order("a").order("b").execute()
        assert final.data == [
            {"a": 1, "b": "x", "v": 10, "note": "keep"},  # only the payload's columns are updated
            {"a": 1, "b": "y", "v": 2, "note": None},
            {"a": 2, "b": "x", "v": 20, "note": None},
        ]


def test_insert_is_atomic_and_unique_violation_is_409(admin: psycopg.Connection[Any], schema: str) -> None:
    run_sql(admin, f"CREATE TABLE {schema}.u (id int PRIMARY KEY)")
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema, api_key=KEY) as server:
        table = make_client(server, schema).table("u")
        table.insert([{"id": 1}]).execute()
        with pytest.raises(APIError) as dup:
            table.insert([{"id": 2}, {"id": 3}, {"id": 1}]).execute()
        assert dup.value.code == "23505"
        assert server.log[-1].status == 409
        assert table.select("id").execute().data == [{"id": 1}]

        with pytest.raises(APIError) as unknown_column:
            table.insert({"id": 5, "nope": 1}).execute()
        assert unknown_column.value.code == "PGRST204"


def test_delete_with_in_filter(admin: psycopg.Connection[Any], schema: str) -> None:
    run_sql(admin, f"CREATE TABLE {schema}.d (id int PRIMARY KEY, tag text)")
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema, api_key=KEY) as server:
        table = make_client(server, schema).table("d")
        table.insert([{"id": i, "tag": "t" if i % 2 else "u"} for i in range(1, 7)]).execute()
        deleted = table.delete().in_("id", [2, 3, 42]).execute()
        assert sorted(r["id"] for r in rows(deleted)) == [2, 3]
        table.delete(returning=ReturnMethod.minimal).eq("tag", "u").execute()
        assert server.log[-1].status == 204
        assert table.select("id").order("id").execute().data == [{"id": 1}, {"id": 5}]


def test_reserved_word_and_mixed_case_columns(admin: psycopg.Connection[Any], schema: str) -> None:
    run_sql(
        admin,
        f'CREATE TABLE {schema}."Weird Table" ("order" int, "MixedCase" text, "select" text, '
        f'PRIMARY KEY ("order", "MixedCase"))',
    )
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema, api_key=KEY) as server:
        table = make_client(server, schema).table("Weird Table")
        table.insert(
            [{"order": 1, "MixedCase": "A", "select": "s1"}, {"order": 2, "MixedCase": "B"}]
        ).execute()
        table.upsert(
            [{"order": 1, "MixedCase": "A", "select": "s2"}], on_conflict="order,MixedCase"
        ).execute()
        got = table.select('"MixedCase",order,"select"').eq("MixedCase", "A").execute()
        assert got.data == [{"MixedCase": "A", "order": 1, "select": "s2"}]
        gone = table.delete().in_("MixedCase", ["B"]).execute()
        assert gone.data == [{"order": 2, "MixedCase": "B", "select": None}]


def test_unknown_table_until_schema_reload(admin: psycopg.Connection[Any], schema: str) -> None:
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema, api_key=KEY) as server:
        table = make_client(server, schema).table("late")
        with pytest.raises(APIError) as missing:
            table.select("*").execute()
        assert missing.value.code == "PGRST205"
        assert missing.value.message == f"Could not find the table '{schema}.late' in the schema cache"
        assert server.log[-1].status == 404

        status, rows = sql_endpoint(
            server, f"CREATE TABLE {schema}.late (id int PRIMARY KEY); NOTIFY pgrst, 'reload schema'"
        )
        assert (status, rows) == (200, [])
        # PostgREST reloads asynchronously after the NOTIFY: for a moment the new table is still unknown.
        with pytest.raises(APIError) as not_yet:
            table.insert({"id": 1}).execute()
        assert not_yet.value.code == "PGRST205"
        wait_for_table(server, "late")
        table.insert({"id": 1}).execute()
        assert table.select("id").execute().data == [{"id": 1}]

        status, rows = sql_endpoint(server, f"SELECT id, now() IS NOT NULL AS ok FROM {schema}.late")
        assert (status, rows) == (200, [{"id": 1, "ok": True}])
        status, err = sql_endpoint(server, "SELECT * FROM no_such_table_here")
        assert status == 400
        assert err["code"] == "42P01"
        status, err = sql_endpoint(server, "SELECT 1", key="wrong")
        assert status == 401


def test_schema_cache_needs_reload_and_listens(admin: psycopg.Connection[Any], schema: str) -> None:
    channel = f"pgrst_{uuid.uuid4().hex[:12]}"  # private channel: other tests' NOTIFYs cannot interfere
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema, db_channel=channel) as server:
        client = make_client(server, schema, key="anything")
        status, _ = sql_endpoint(server, f"CREATE TABLE {schema}.ddl (id int)")
        assert status == 200
        with pytest.raises(APIError) as stale:
            client.table("ddl").select("*").execute()
        assert stale.value.code == "PGRST205"

        # A NOTIFY from any connection reaches the server's LISTEN, as with real PostgREST.
        run_sql(admin, f"NOTIFY {channel}, 'reload schema'")
        deadline = time.monotonic() + 10
        while not any(t.name == "ddl" for t in server.tables()):
            assert time.monotonic() < deadline, "schema cache was not reloaded by NOTIFY"
            time.sleep(0.05)
        assert client.table("ddl").select("*").execute().data == []

        run_sql(admin, f"CREATE TABLE {schema}.ddl2 (id int)")
        server.reload_schema()
        assert client.table("ddl2").select("*").execute().data == []


def test_wrong_or_missing_key_is_401(admin: psycopg.Connection[Any], schema: str) -> None:
    run_sql(admin, f"CREATE TABLE {schema}.secret (id int)")
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema, api_key=KEY) as server:
        with pytest.raises(APIError) as denied:
            make_client(server, schema, key="wrong-key").table("secret").select("*").execute()
        assert denied.value.code == "PGRST301"
        assert server.log[-1].status == 401

        status, body = post_json(f"{server.rest_url}/secret", [{"id": 1}], {"Content-Profile": schema})
        assert status == 401
        assert set(body) == {"code", "details", "hint", "message"}
        assert make_client(server, schema).table("secret").select("*").execute().data == []


def test_fail_next_is_seen_by_the_client(admin: psycopg.Connection[Any], schema: str) -> None:
    run_sql(admin, f"CREATE TABLE {schema}.flaky (id int PRIMARY KEY)")
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema, api_key=KEY) as server:
        table = make_client(server, schema).table("flaky")

        server.fail_next(1, 503)
        with pytest.raises(APIError) as unavailable:
            table.insert({"id": 1}).execute()
        # The gateway's JSON body has no code: postgrest-py then reports none (nor the status).
        assert unavailable.value.code is None
        assert unavailable.value.message == "failure to get a peer from the ring-balancer"
        assert server.requests[-1] == ("POST", "/rest/v1/flaky")
        assert [r.status for r in server.log] == [503]  # writes are not retried by postgrest-py
        assert table.select("id").execute().data == []

        server.requests.clear()
        server.fail_next(1, 503)
        assert table.select("id").execute().data == []  # GET is retried after a 503 (1 s back-off)
        assert server.requests == [("GET", "/rest/v1/flaky"), ("GET", "/rest/v1/flaky")]
        assert server.log[-1].headers.get("x-retry-count") == "1"

        server.fail_next(1, 503)
        with pytest.raises(APIError):
            table.select("id").retry(False).execute()


def test_concurrent_requests(admin: psycopg.Connection[Any], schema: str) -> None:
    run_sql(admin, f"CREATE TABLE {schema}.many (id int PRIMARY KEY)")
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema, api_key=KEY) as server:

        def insert_batch(start: int) -> None:
            client = make_client(server, schema)
            client.table("many").insert(
                [{"id": start + i} for i in range(10)], returning=ReturnMethod.minimal
            ).execute()

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(insert_batch, range(0, 160, 10)))
        result = (
            make_client(server, schema).table("many").select("id", count=CountMethod.exact).limit(1).execute()
        )
        assert result.count == 160


# ---- what a Supabase project adds: roles and grants, limits, the gateway -------------------------------------

JWT_SECRET = "selftest-jwt-secret-0123456789abcdef"


def test_requests_run_as_the_keys_role_with_real_grants(admin: psycopg.Connection[Any], schema: str) -> None:
    run_sql(admin, f"CREATE TABLE {schema}.g (id int PRIMARY KEY); INSERT INTO {schema}.g VALUES (1); "
                   f"GRANT USAGE ON SCHEMA {schema} TO anon, service_role; GRANT SELECT ON {schema}.g TO service_role")
    service = sign_jwt(JWT_SECRET, {"role": "service_role"})
    anon = sign_jwt(JWT_SECRET, {"role": "anon"})
    with PostgrestServer(PG_DSN, schema=schema, jwt_secret=JWT_SECRET, api_key=KEY) as server:
        assert make_client(server, schema, key=service).table("g").select("id").execute().data == [{"id": 1}]
        assert make_client(server, schema, key=KEY).table("g").select("id").execute().data == [{"id": 1}]
        with pytest.raises(APIError) as denied:
            make_client(server, schema, key=anon).table("g").select("id").execute()
        assert denied.value.code == "42501" and server.log[-1].status == 401  # anon: 401, as PostgREST
        with pytest.raises(APIError) as no_insert:
            make_client(server, schema, key=service).table("g").insert({"id": 2}).execute()
        assert no_insert.value.code == "42501" and server.log[-1].status == 403
        forged = sign_jwt("another-secret-entirely-0123456789", {"role": "service_role"})
        with pytest.raises(APIError) as invalid:
            make_client(server, schema, key=forged).table("g").select("id").execute()
        assert invalid.value.code == "PGRST301"
        assert server.roles == ["service_role", "service_role", "anon", "service_role"]


def test_max_rows_caps_every_response(admin: psycopg.Connection[Any], schema: str) -> None:
    run_sql(admin, f"CREATE TABLE {schema}.m (id int PRIMARY KEY); "
                   f"INSERT INTO {schema}.m SELECT generate_series(1, 30)")
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema, max_rows=12) as server:
        table = make_client(server, schema).table("m")
        assert len(rows(table.select("id").execute())) == 12
        page = table.select("id", count=CountMethod.exact).order("id").range(10, 29).execute()
        assert [r["id"] for r in rows(page)] == list(range(11, 23)) and page.count == 30
        assert server.log[-1].status == 206


def test_statement_timeout_and_gateway_faults(admin: psycopg.Connection[Any], schema: str) -> None:
    run_sql(admin, f"CREATE TABLE {schema}.s (id int PRIMARY KEY)")
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema, statement_timeout_ms=100) as server:
        table = make_client(server, schema).table("s")
        server.slow_writes(0.05)
        with pytest.raises(APIError) as cancelled:
            table.insert([{"id": i} for i in range(10)]).execute()
        assert cancelled.value.code == "57014" and server.log[-1].status == 500
        table.insert({"id": 1}).execute()  # 50 ms: within the timeout
        server.slow_writes(0)
        server.fail_next(1, 504, body="empty")
        with pytest.raises(APIError) as empty:
            table.insert({"id": 2}).execute()
        assert (empty.value.code, empty.value.message) == (None, None)
        server.fail_next(1, 503, body="postgrest")
        with pytest.raises(APIError) as coded:
            table.insert({"id": 2}).execute()
        assert coded.value.code == "503"


def test_the_sql_endpoint_like_pg_meta_and_like_hosted(admin: psycopg.Connection[Any], schema: str) -> None:
    run_sql(admin, f"CREATE TABLE {schema}.q (id int)")
    with PostgrestServer(PG_DSN, grants="legacy", schema=schema, api_key=KEY) as server:
        pg_meta = server.url + "/pg/query"
        headers = {"Authorization": f"Bearer {KEY}"}
        status, body = post_json(pg_meta, {"query": f"SELECT 1 AS a; SELECT * FROM {schema}.q"}, headers)
        assert (status, body) == (200, [{"a": 1}])  # pg-meta: the last statement that returned rows
        server.fail_sql_next(1, 504, after_commit=True, matching="INSERT")
        status, body = post_json(pg_meta, {"query": f"INSERT INTO {schema}.q VALUES (7)"}, headers)
        assert status == 504 and body == {"message": "The upstream server is timing out"}
        assert post_json(pg_meta, {"query": f"SELECT id FROM {schema}.q"}, headers) == (200, [{"id": 7}])
        server.fail_sql_next(1, 504, matching="INSERT")
        assert post_json(pg_meta, {"query": f"INSERT INTO {schema}.q VALUES (8)"}, headers)[0] == 504
        assert post_json(pg_meta, {"query": f"SELECT id FROM {schema}.q"}, headers) == (200, [{"id": 7}])
        status, body = post_json(pg_meta, {"query": "SELECT * FROM nowhere_at_all"}, headers)
        assert status == 400 and body["code"] == "42P01" and body["error"].startswith("ERROR:  42P01:")
        server.sql_enabled = False
        assert post_json(pg_meta, {"query": "SELECT 1"}, headers) == (
            404, {"message": "no Route matched with those values"})


def test_openapi_marks_primary_keys_and_follows_privileges(admin: psycopg.Connection[Any], schema: str) -> None:
    run_sql(admin, f"CREATE TABLE {schema}.keyed (b text, a int, PRIMARY KEY (a, b)); "
                   f"CREATE TABLE {schema}.hidden (id int PRIMARY KEY); GRANT USAGE ON SCHEMA {schema} TO anon; "
                   f"GRANT SELECT ON {schema}.keyed TO anon")
    with PostgrestServer(PG_DSN, schema=schema, not_found="empty") as server:
        request = urllib.request.Request(server.rest_url + "/", headers={"Accept-Profile": schema})
        with urllib.request.urlopen(request, timeout=30) as response:
            definitions = json.loads(response.read())["definitions"]
        assert list(definitions) == ["keyed"]
        properties = definitions["keyed"]["properties"]
        assert list(properties) == ["b", "a"] and all("<pk/>" in p["description"] for p in properties.values())
        status, body = post_json(f"{server.rest_url}/nowhere", {}, {"Content-Profile": schema})
        assert (status, body) == (404, {})  # an older PostgREST's bare answer for a table it does not know
