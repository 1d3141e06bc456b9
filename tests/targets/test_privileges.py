from __future__ import annotations

import uuid

import asyncpg
from support.pg import PG_ADMIN_URL, create_pg_database, drop_pg_database, pg_url

from shared.targets.config import DataSource
from shared.targets.privileges import role_findings


def source(url: str) -> DataSource:
    return DataSource(name="t", url=url, dialect="postgresql")


async def test_superuser_is_reported() -> None:
    findings = await role_findings(source(PG_ADMIN_URL))
    assert any("SUPERUSER" in f for f in findings)


async def test_a_select_only_role_is_clean_and_a_writer_is_not() -> None:
    name = await create_pg_database("sqlagent_priv")
    role = f"reader_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_url(name))
    try:
        await admin.execute("CREATE TABLE t (id int)")
        await admin.execute(
            f"CREATE ROLE {role} LOGIN PASSWORD 'pw'; GRANT CONNECT ON DATABASE \"{name}\" TO {role};"
            f"GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON t TO {role};"
            f"REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
            f"ALTER ROLE {role} SET default_transaction_read_only = on"
        )
        url = pg_url(name).replace("postgres@", f"{role}:pw@")
        assert await role_findings(source(url)) == []
        await admin.execute(f"GRANT INSERT ON t TO {role}")
        assert any("write to 1 table" in f for f in await role_findings(source(url)))
    finally:
        await admin.close()
        await drop_pg_database(name)
        conn = await asyncpg.connect(PG_ADMIN_URL)
        await conn.execute(f"DROP ROLE IF EXISTS {role}")
        await conn.close()
