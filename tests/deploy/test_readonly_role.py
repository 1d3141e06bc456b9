"""deploy/sql/readonly_role.sql run by psql against the real PostgreSQL: the role it makes reads the
chosen schemas and nothing else, starts every session read-only with its timeouts, is held to its
connection limit, and a second run takes back what was granted to it by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import msgspec
import pytest
from support.pg import PG_ADMIN_URL, create_pg_database, drop_pg_database, pg_url

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "sql" / "readonly_role.sql"

pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")


class Target(msgspec.Struct, frozen=True):
    database: str
    role: str
    password: str


def run_script(database: str, **variables: str) -> subprocess.CompletedProcess[str]:
    argv = ["psql", "-X", pg_url(database)]
    for name, value in variables.items():
        argv += ["-v", f"{name}={value}"]
    return subprocess.run([*argv, "-f", str(SCRIPT)], capture_output=True, text=True, timeout=60)


def apply_role(target: Target) -> None:
    done = run_script(
        target.database,
        role=target.role,
        password=target.password,
        schemas="public, reporting",
        connection_limit="2",
        statement_timeout="7s",
    )
    assert done.returncode == 0, done.stderr


async def admin(database: str) -> asyncpg.Connection:
    return await asyncpg.connect(pg_url(database))


async def as_role(target: Target) -> asyncpg.Connection:
    # Over TCP with the role's own password, like sqlagent's target pool.
    parts = urlsplit(PG_ADMIN_URL)
    return await asyncpg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=target.role,
        password=target.password,
        database=target.database,
    )


async def drop_role(name: str) -> None:
    conn = await admin("postgres")
    try:
        await conn.execute(f'DROP ROLE IF EXISTS "{name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def target() -> AsyncIterator[Target]:
    database = await create_pg_database("sqlagent_ro")
    role = f"sqlagent_ro_{uuid.uuid4().hex[:10]}"
    conn = await admin(database)
    try:
        await conn.execute(
            """
            CREATE SCHEMA reporting;
            CREATE SCHEMA hr;
            CREATE TABLE public.orders (id int PRIMARY KEY, total numeric NOT NULL);
            CREATE SEQUENCE public.order_ids;
            INSERT INTO public.orders VALUES (1, 10.50), (2, 99.00);
            CREATE TABLE reporting.daily (day date PRIMARY KEY, revenue numeric);
            INSERT INTO reporting.daily VALUES ('2025-01-01', 109.50);
            CREATE TABLE hr.salaries (employee text, salary int);
            INSERT INTO hr.salaries VALUES ('ann', 100000);
            """
        )
    finally:
        await conn.close()
    created = Target(database=database, role=role, password=secrets.token_urlsafe(18))
    try:
        apply_role(created)
        yield created
    finally:
        await drop_pg_database(database)
        await drop_role(role)


async def test_reads_the_chosen_schemas_only(target: Target) -> None:
    conn = await as_role(target)
    try:
        assert await conn.fetchval("SELECT sum(total) FROM public.orders") == 109.5
        assert await conn.fetchval("SELECT count(*) FROM reporting.daily") == 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="schema hr"):
            await conn.fetch("SELECT * FROM hr.salaries")
    finally:
        await conn.close()


async def test_tables_created_later_are_readable(target: Target) -> None:
    conn = await admin(target.database)
    try:
        await conn.execute("CREATE TABLE reporting.monthly (month text, revenue numeric)")
        await conn.execute("INSERT INTO reporting.monthly VALUES ('2025-01', 109.50)")
    finally:
        await conn.close()
    reader = await as_role(target)
    try:
        assert await reader.fetchval("SELECT month FROM reporting.monthly") == "2025-01"
    finally:
        await reader.close()


async def test_sessions_start_read_only_with_the_role_settings(target: Target) -> None:
    conn = await as_role(target)
    try:
        shown = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in (
                "default_transaction_read_only",
                "statement_timeout",
                "lock_timeout",
                "idle_in_transaction_session_timeout",
            )
        }
        assert shown == {
            "default_transaction_read_only": "on",
            "statement_timeout": "7s",
            "lock_timeout": "5s",
            "idle_in_transaction_session_timeout": "1min",
        }
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await conn.execute("INSERT INTO public.orders VALUES (3, 1)")
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO public.orders VALUES (3, 1)",
        "UPDATE public.orders SET total = 0",
        "DELETE FROM reporting.daily",
        "TRUNCATE public.orders",
        "CREATE TABLE public.mine (a int)",
        "CREATE TABLE reporting.mine (a int)",
        "CREATE SCHEMA mine",
        "SELECT nextval('public.order_ids')",
    ],
)
async def test_cannot_write_even_when_the_session_turns_read_only_off(target: Target, statement: str) -> None:
    """The role's read-only default is only a default the session may change; the privileges hold."""
    conn = await as_role(target)
    try:
        await conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_role_attributes_and_password(target: Target) -> None:
    conn = await admin("postgres")
    try:
        role = await conn.fetchrow(
            "SELECT rolcanlogin, rolsuper, rolinherit, rolcreatedb, rolcreaterole, rolreplication, "
            "rolbypassrls, rolconnlimit, rolpassword FROM pg_authid WHERE rolname = $1",
            target.role,
        )
        members = await conn.fetchval(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1",
            target.role,
        )
    finally:
        await conn.close()
    assert role is not None
    assert role["rolcanlogin"] and role["rolconnlimit"] == 2
    assert not any(
        role[a]
        for a in ("rolsuper", "rolinherit", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls")
    )
    assert members == 0
    # pg_hba here trusts 127.0.0.1, so a login would not prove the password: check the stored
    # SCRAM verifier against it instead (RFC 5802: StoredKey = H(HMAC(SaltedPassword, "Client Key"))).
    assert scram_matches(role["rolpassword"], target.password)
    assert not scram_matches(role["rolpassword"], target.password + "x")


def scram_matches(verifier: str, password: str) -> bool:
    mechanism, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    assert mechanism == "SCRAM-SHA-256"
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    return hashlib.sha256(client_key).digest() == stored_key and (
        hmac.digest(salted, b"Server Key", "sha256") == server_key
    )


async def test_connection_limit_is_enforced(target: Target) -> None:
    held = [await as_role(target), await as_role(target)]
    try:
        with pytest.raises(asyncpg.TooManyConnectionsError):
            await as_role(target)
    finally:
        for conn in held:
            await conn.close()


async def test_second_run_takes_back_what_was_granted_by_hand(target: Target) -> None:
    conn = await admin(target.database)
    try:
        await conn.execute(
            f"""
            GRANT INSERT, UPDATE ON public.orders TO "{target.role}";
            GRANT USAGE, CREATE ON SCHEMA hr TO "{target.role}";
            GRANT SELECT ON hr.salaries TO "{target.role}";
            GRANT pg_write_all_data TO "{target.role}";
            ALTER ROLE "{target.role}" IN DATABASE "{target.database}"
                SET default_transaction_read_only = off;
            ALTER ROLE "{target.role}" INHERIT CONNECTION LIMIT 50;
            """
        )
        reader = await as_role(target)
        try:
            assert await reader.fetchval("SHOW default_transaction_read_only") == "off"
            await reader.execute("INSERT INTO public.orders VALUES (3, 1)")  # the hand grant works
        finally:
            await reader.close()

        apply_role(target)

        assert await conn.fetchval("SELECT count(*) FROM public.orders") == 3
        await conn.execute("DELETE FROM public.orders WHERE id = 3")
    finally:
        await conn.close()
    reader = await as_role(target)
    try:
        assert await reader.fetchval("SHOW default_transaction_read_only") == "on"
        await reader.execute("SET default_transaction_read_only = off")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute("INSERT INTO public.orders VALUES (4, 1)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.fetch("SELECT * FROM hr.salaries")
        member = await reader.fetchval("SELECT pg_has_role(current_user, 'pg_write_all_data', 'MEMBER')")
        assert member is False
        assert await reader.fetchval("SELECT rolinherit FROM pg_roles WHERE rolname = current_user") is False
        assert await reader.fetchval("SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user") == 2
    finally:
        await reader.close()


async def test_refuses_missing_variables_unknown_schemas_and_privileged_roles(target: Target) -> None:
    fresh = f"sqlagent_ro_{uuid.uuid4().hex[:10]}"
    superuser = f"sqlagent_su_{uuid.uuid4().hex[:10]}"
    conn = await admin("postgres")
    try:
        await conn.execute(f'CREATE ROLE "{superuser}" SUPERUSER')
        cases = {
            "-v role=NAME": {"password": "x"},
            "-v password=SECRET": {"role": fresh},
            "no such schema in database": {"role": fresh, "password": "x", "schemas": "public,nope"},
            "connection_limit must be a number": {"role": fresh, "password": "x", "connection_limit": "ten"},
            "is a superuser": {"role": superuser, "password": "x"},
            "is the role running this script": {"role": "postgres", "password": "x"},
        }
        for message, variables in cases.items():
            done = run_script(target.database, **variables)
            assert done.returncode != 0 and message in done.stderr, (variables, done.stderr)
        # One transaction: a refused run leaves nothing behind.
        assert await conn.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", fresh) == 0
        assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = $1", superuser) is True
    finally:
        await conn.execute(f'DROP ROLE IF EXISTS "{superuser}"')
        await conn.close()
