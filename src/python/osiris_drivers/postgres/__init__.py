"""PostgreSQL family: shared connection, DDL and COPY loading code; the `postgres.*` components."""
