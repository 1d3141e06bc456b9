from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
from support.pg import create_pg_database, drop_pg_database, pg_url

from shared.db.migrate import available, migrate, pending


def test_every_dialect_has_the_same_migrations() -> None:
    assert [m.name for m in available("sqlite")] == [m.name for m in available("postgres")]


async def test_sqlite_twice_is_a_no_op(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/a.db"
    assert await pending(url) == [m.name for m in available("sqlite")]
    assert await migrate(url) == [m.name for m in available("sqlite")]
    assert await migrate(url) == []
    assert await pending(url) == []


def _run_migrate_processes(url: str, n: int) -> list[subprocess.CompletedProcess[str]]:
    env = {"SQLAGENT_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cli.main", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    return [subprocess.CompletedProcess(p.args, p.wait(60), *p.communicate()) for p in procs]


def test_sqlite_concurrent_runners(tmp_path) -> None:  # type: ignore[no-untyped-def]
    results = _run_migrate_processes(f"sqlite:///{tmp_path}/c.db", 4)
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert sum("applied 1" in r.stdout for r in results) == 1


async def test_postgres_concurrent_runners_apply_once() -> None:
    name = await create_pg_database("sqlagent_mig")
    try:
        url = pg_url(name)
        results = await asyncio.to_thread(_run_migrate_processes, url, 4)
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
        assert sum("applied 1" in r.stdout for r in results) == 1
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(available("postgres"))
        finally:
            await conn.close()
        assert await pending(url) == []
    finally:
        await drop_pg_database(name)
