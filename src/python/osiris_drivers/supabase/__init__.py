"""The `supabase` family: `connection.py` (PostgREST via supabase-py, the DDL channel), `ddl_channel.py`,
`rest_stage.py`, and the components `supabase.extractor` and `supabase.writer`; SQL is the `postgres` family's."""
