"""The `filesystem` family: `connection.py` (a local file), `dialect.py` (CSV options) and the components
`filesystem.csv_extractor` and `filesystem.csv_writer`."""
