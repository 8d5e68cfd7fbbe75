"""The `mysql` family (MySQL / MariaDB): `connection.py`, `dialect.py`, `client.py` (the LOCAL INFILE guard) and
the components `mysql.extractor` and `mysql.writer`."""
