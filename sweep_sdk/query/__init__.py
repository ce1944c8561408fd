"""The query engines: DuckDB over a data folder, Athena over a deployed stack."""
