"""Query results as the SPEC's JSON values (see `values`)."""

from shared.results.values import Column, configure_asyncpg_codecs, pg_type_name, to_json_value

__all__ = ["Column", "configure_asyncpg_codecs", "pg_type_name", "to_json_value"]
