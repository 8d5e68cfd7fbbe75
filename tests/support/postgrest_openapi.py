"""The test PostgREST server (`tests.support.postgrest_server`) with PostgREST's OpenAPI root, `GET /rest/v1/`.

PostgREST describes the tables and views of the requested schema (`Accept-Profile`) in its schema cache as
Swagger 2.0 (PostgREST's `Response/OpenAPI.hs`): per relation a `definitions` entry whose `properties` hold one
entry per column, in column order, with the type as `format` (`format_type` without modifiers: `integer`,
`character varying`, `timestamp with time zone`, `text[]`), a JSON `type`, `maxLength` for `character varying(n)`
and `Note:\\nThis is a Primary Key.<pk/>` in the description of key columns; `required` lists the NOT NULL
columns. `paths` has `/<name>` with `get`, plus `post`, `patch` and `delete` when PostgreSQL can insert, update
or delete through it (`pg_relation_is_updatable`).
"""

from __future__ import annotations

from typing import Any, Final

from tests.support.postgrest_server import PostgrestServer, _json_response, _Response

_SWAGGER_TYPES: Final = {
    "character varying": "string", "character": "string", "text": "string", "boolean": "boolean",
    "smallint": "integer", "integer": "integer", "bigint": "integer", "numeric": "number", "real": "number",
    "double precision": "number",
}
_COLUMNS_SQL: Final = """
SELECT c.relname, a.attname, format_type(a.atttypid, NULL), a.attnotnull,
       CASE WHEN a.atttypid = 'varchar'::regtype AND a.atttypmod > 4 THEN a.atttypmod - 4 END,
       pg_relation_is_updatable(c.oid, true)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""
_INSERT, _UPDATE, _DELETE = 8, 4, 16
"""`pg_relation_is_updatable` bits."""


def _swagger_type(pg_type: str) -> str | None:
    if pg_type in ("json", "jsonb"):
        return None
    if pg_type.endswith("[]"):
        return "array"
    return _SWAGGER_TYPES.get(pg_type, "string")


class OpenApiPostgrestServer(PostgrestServer):
    """A `PostgrestServer` that also serves the OpenAPI description of its schema cache."""

    def _openapi(self, schema: str, role: str) -> _Response:
        """The richer description (types, lengths, NOT NULL, writable paths) of every cached relation."""
        cached = {t.name: t for t in self.tables() if t.schema == schema}
        with self._connection() as connection, connection.cursor() as cursor:
            cursor.execute(_COLUMNS_SQL, [schema])
            rows = cursor.fetchall()
        definitions: dict[str, Any] = {}
        paths: dict[str, Any] = {"/": {"get": {"tags": ["Introspection"]}}}
        for table, column, pg_type, not_null, max_length, updatable in rows:
            if table not in cached or column not in cached[table].columns:
                continue  # not in the schema cache (yet): PostgREST does not know it
            definition = definitions.setdefault(table, {"type": "object", "properties": {}, "required": []})
            prop: dict[str, Any] = {"format": pg_type}
            swagger = _swagger_type(pg_type)
            if swagger is not None:
                prop["type"] = swagger
            if max_length is not None:
                prop["maxLength"] = max_length
            if column in cached[table].primary_key:
                prop["description"] = "Note:\nThis is a Primary Key.<pk/>"
            definition["properties"][column] = prop
            if not_null:
                definition["required"].append(column)
            path = paths.setdefault(f"/{table}", {"get": {"tags": [table]}})
            for bit, method in ((_INSERT, "post"), (_UPDATE, "patch"), (_DELETE, "delete")):
                if updatable & bit:
                    path[method] = {"tags": [table]}
        document = {"swagger": "2.0", "info": {"title": "PostgREST API", "version": "12.2.3 (test server)"},
                    "basePath": "/", "schemes": ["http"], "paths": paths, "definitions": definitions}
        return _json_response(200, document)  # the handler sends no body for HEAD
