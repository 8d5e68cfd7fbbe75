"""The `supabase` family: `connection.py` (settings, the DDL channel choice, the doctor), `ddl_channel.py` (SQL over
psycopg2 or HTTP), `rest.py` (PostgREST through supabase-py, errors by status and SQLSTATE), `rest_stage.py`
(batches into a staging table), `privileges.py` (grants for the Data API's roles), `load_marker.py` (whether a
load committed), and the components `supabase.extractor` and `supabase.writer`; SQL is the `postgres` family's."""
