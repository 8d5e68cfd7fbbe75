"""MySQL / MariaDB components (`mysql.extractor`, `mysql.writer`) sharing `connection.py` and `types.py`."""
