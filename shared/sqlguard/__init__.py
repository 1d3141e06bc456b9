"""The SQL guard: proves generated SQL read-only and confined to a data source before it runs.

PostgreSQL: `check_postgres(sql, PostgresPolicy(...))` returns the statement to execute.
SQLite: `harden_connection(conn, tables)` once per target connection, then
`check_sqlite(conn, sql, tables)` per statement. Both raise `SqlRejected(rule, detail)`.
"""

from shared.sqlguard.postgres import PostgresPolicy, check_postgres
from shared.sqlguard.sqlite import check_sqlite, harden_connection, make_authorizer

__all__ = ["PostgresPolicy", "check_postgres", "check_sqlite", "harden_connection", "make_authorizer"]
