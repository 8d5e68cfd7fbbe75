"""The `postgres` family: `connection.py`, `dialect.py`, COPY loading (`copy.py`) and reading (`source.py`) shared
with `supabase`, and the components `postgres.extractor` and `postgres.writer`."""
