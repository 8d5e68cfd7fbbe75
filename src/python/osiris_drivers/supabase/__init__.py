"""Supabase family: PostgREST via supabase-py, COPY over `pg_dsn`, DDL over psycopg2 or HTTP SQL."""
