"""Osiris components: one folder per connection family (`connection.py`, for SQL a `dialect.py`) with one folder
per component (`spec.yaml` + `driver.py`); the SQL components share `osiris_drivers.sql`. See docs/components.md."""

__version__ = "0.1.0"
