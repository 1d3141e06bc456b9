"""The start-up check of a PostgreSQL target's role: sqlagent's guard keeps generated SQL
read-only, but the role should not be able to write in the first place (deploy/sql/readonly_role.sql).
Findings are warnings, not errors: an operator may knowingly point a demo at a superuser."""

from __future__ import annotations

import asyncpg

from shared.targets.config import DataSource

_QUERY = """
SELECT r.rolname, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolbypassrls,
       current_setting('default_transaction_read_only') AS read_only,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%'
          AND (has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE')
               OR has_table_privilege(c.oid, 'DELETE') OR has_table_privilege(c.oid, 'TRUNCATE'))
       ) AS writable_tables,
       (SELECT count(*) FROM pg_namespace n
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_%'
          AND has_schema_privilege(n.oid, 'CREATE')) AS creatable_schemas
FROM pg_roles r WHERE r.rolname = current_user
"""


async def role_findings(source: DataSource, *, timeout_s: float = 10) -> list[str]:
    """What the data source's role can do beyond reading; empty when it is properly read-only."""
    conn = await asyncpg.connect(source.url, timeout=timeout_s)
    try:
        row = await conn.fetchrow(_QUERY)
    finally:
        await conn.close()
    assert row is not None
    findings = []
    if row["rolsuper"]:
        findings.append(f"role {row['rolname']} is a SUPERUSER")
    if row["rolcreatedb"] or row["rolcreaterole"]:
        findings.append(f"role {row['rolname']} can create databases or roles")
    if row["rolbypassrls"]:
        findings.append(f"role {row['rolname']} bypasses row-level security")
    if row["writable_tables"]:
        findings.append(f"role {row['rolname']} can write to {row['writable_tables']} table(s)")
    if row["creatable_schemas"]:
        findings.append(f"role {row['rolname']} can create objects in {row['creatable_schemas']} schema(s)")
    if row["read_only"] != "on":
        findings.append("default_transaction_read_only is off for this role")
    return findings
