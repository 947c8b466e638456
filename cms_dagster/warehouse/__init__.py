"""Warehouse access and loading: DuckDB (embedded) and Snowflake (production)."""
