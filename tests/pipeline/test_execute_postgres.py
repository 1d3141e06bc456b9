"""The PostgreSQL executor against a real server: values, caps, timeouts, errors, cancellation,
and the state of pooled connections afterwards."""

from __future__ import annotations

import asyncio
import socket
import time

import asyncpg
import msgspec
import pytest

from shared.pipeline_errors import OperationTimeout, SqlExecutionError, TargetUnavailable
from shared.results.values import Column
from shared.targets.config import DataSource
from worker.pipeline.execute import ExecutionLimits, PostgresTarget

SETUP = r"""
CREATE TABLE everything (
    id int4 PRIMARY KEY, i2 int2, i8 int8, f4 float4, f8 float8, f8_special float8[],
    num numeric, num_big numeric(70, 35), num_nan numeric, t text, vc varchar(10), b bool,
    d date, d_inf date, tm time, ttz timetz, ts timestamp, tstz timestamptz,
    iv interval, iv_neg interval, js json, jb jsonb, ia int[], ta text[][], u uuid, ba bytea,
    ip inet, ip6 inet, net cidr, r int4range
);
INSERT INTO everything VALUES (
    1, -32768, 9223372036854775807, 1.1, 0.1, '{NaN,Infinity,-Infinity}',
    '-12.50', '123456789012345678901234567890.12345678901234567890123456789012345', 'NaN',
    E'h\u00e9llo "quoted"\n', 'abc', true,
    '2024-02-29', 'infinity', '23:59:59.123456', '12:00:00-03:30', '2024-02-29 12:34:56.5',
    '2024-02-29 12:34:56+02', '1 year 2 months 3 days 04:05:06.789', '-1 year -2 days +03:00',
    '{"b": 1, "a": [true, null, 1.5]}', '{"z": {"y": "x"}, "n": 12345678901234567890}',
    '{1,NULL,3}', '{{a,b},{c,d}}', '00000000-0000-0000-0000-000000000001', '\x000102ff',
    '192.168.1.5/24', '::1', '10.0.0.0/8', '[1,5)'
);
INSERT INTO everything (id) VALUES (2);
CREATE SCHEMA "Mixed Case";
CREATE TABLE "Mixed Case"."Things" (id int PRIMARY KEY, label text);
INSERT INTO "Mixed Case"."Things" VALUES (1, 'one');
CREATE SEQUENCE seq;
CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE TYPE pair AS (a int, b numeric, d date, j jsonb);
CREATE TABLE custom (m mood, p pair, ms mood[], ps pair[]);
INSERT INTO custom
VALUES ('sad', ROW(1, 2.5, '2024-01-01', '{"x": 1}'), '{ok,sad}', ARRAY[ROW(2, 3, NULL, NULL)::pair]);
CREATE TABLE wide AS SELECT g AS n, repeat('x', 90) AS pad FROM generate_series(1, 500) g;
"""

EXPECTED_ROW = {
    "id": 1,
    "i2": -32768,
    "i8": 9223372036854775807,
    "f4": 1.1,
    "f8": 0.1,
    "f8_special": ["NaN", "Infinity", "-Infinity"],
    "num": "-12.50",
    "num_big": "123456789012345678901234567890.12345678901234567890123456789012345",
    "num_nan": "NaN",
    "t": 'h\u00e9llo "quoted"\n',
    "vc": "abc",
    "b": True,
    "d": "2024-02-29",
    "d_inf": "infinity",
    "tm": "23:59:59.123456",
    "ttz": "12:00:00-03:30",
    "ts": "2024-02-29T12:34:56.5",
    "tstz": "2024-02-29T10:34:56+00:00",
    "iv": "P1Y2M3DT4H5M6.789S",
    "iv_neg": "P-1Y-2DT3H",
    "js": {"b": 1, "a": [True, None, 1.5]},
    "jb": {"n": 12345678901234567890, "z": {"y": "x"}},
    "ia": [1, None, 3],
    "ta": [["a", "b"], ["c", "d"]],
    "u": "00000000-0000-0000-0000-000000000001",
    "ba": "AAEC/w==",
    "ip": "192.168.1.5/24",
    "ip6": "::1",
    "net": "10.0.0.0/8",
    "r": {"empty": False, "lower": 1, "upper": 5, "lower_inc": True, "upper_inc": False},
}
EXPECTED_TYPES = {
    "id": "int4", "i2": "int2", "i8": "int8", "f4": "float4", "f8": "float8", "f8_special": "_float8",
    "num": "numeric", "num_big": "numeric", "num_nan": "numeric", "t": "text", "vc": "varchar",
    "b": "bool", "d": "date", "d_inf": "date", "tm": "time", "ttz": "timetz", "ts": "timestamp",
    "tstz": "timestamptz", "iv": "interval", "iv_neg": "interval", "js": "json", "jb": "jsonb",
    "ia": "_int4", "ta": "_text", "u": "uuid", "ba": "bytea", "ip": "inet", "ip6": "inet",
    "net": "cidr", "r": "int4range",
}  # fmt: skip

LIMITS = ExecutionLimits(statement_timeout_s=5, row_cap=1000, max_bytes=1_000_000)


@pytest.fixture(scope="module")
async def target_db(make_target_db) -> str:
    return await make_target_db(SETUP)


@pytest.fixture(scope="module")
async def target(target_db):
    """max_size=1: every run reuses the same pooled connection, so leftovers would show."""
    source = DataSource(name="t", url=target_db, dialect="postgresql")
    target = await PostgresTarget.open(source, max_size=1)
    yield target
    await target.close()


async def run(target: PostgresTarget, sql: str, limits: ExecutionLimits = LIMITS, path=("public",)):
    return await target.run(sql, search_path=path, limits=limits)


async def test_every_type_becomes_the_spec_json_value(target):
    result = await run(target, "SELECT * FROM everything ORDER BY id")
    assert [c.name for c in result.columns] == list(EXPECTED_ROW)
    assert {c.name: c.type for c in result.columns} == EXPECTED_TYPES
    assert dict(zip(EXPECTED_ROW, result.rows[0], strict=True)) == EXPECTED_ROW
    assert result.rows[1] == [2] + [None] * (len(EXPECTED_ROW) - 1)
    assert result.truncated is False
    assert result.byte_size == len(msgspec.json.encode(result.rows))
    # The stored form is plain JSON: every value survives an encode/decode round trip.
    assert msgspec.json.decode(msgspec.json.encode(result.rows)) == result.rows


async def test_more_types_and_edge_values(target):
    result = await run(
        target,
        "SELECT '0044-03-15 BC'::date AS bc, '24:00'::time AS midnight, 'x'::\"char\" AS ch, "
        "'-infinity'::timestamptz AS ninf, 1e-8::numeric AS tiny, 'empty'::int4range AS e, "
        "ROW(1, 'a') AS anon, '(1,2)'::point AS p, B'101' AS bits, 'sad'::text AS mood, "
        "'1.5'::float4 AS f4, '3.4e38'::float4 AS f4max, ARRAY['2024-01-01'::date] AS dates",
    )
    assert dict(zip([c.name for c in result.columns], result.rows[0], strict=True)) == {
        "bc": "-0043-03-15",
        "midnight": "24:00:00",
        "ch": "x",
        "ninf": "-infinity",
        "tiny": "0.00000001",
        "e": {"empty": True, "lower": None, "upper": None, "lower_inc": False, "upper_inc": False},
        "anon": [1, "a"],
        "p": [1.0, 2.0],
        "bits": "101",
        "mood": "sad",
        "f4": 1.5,
        "f4max": 3.4e38,
        "dates": ["2024-01-01"],
    }
    assert result.columns[6] == Column(name="anon", type="record")


async def test_enums_and_composites(target):
    for _ in range(2):  # the second time, asyncpg's type cache is warm
        result = await run(target, "SELECT m, p, ms, ps FROM custom")
        assert [(c.name, c.type) for c in result.columns] == [
            ("m", "mood"), ("p", "pair"), ("ms", "_mood"), ("ps", "_pair")
        ]  # fmt: skip
        assert result.rows == [
            [
                "sad",
                {"a": 1, "b": "2.5", "d": "2024-01-01", "j": {"x": 1}},
                ["ok", "sad"],
                [{"a": 2, "b": "3", "d": None, "j": None}],
            ]
        ]


async def test_intervals_match_postgres_iso_8601_output(target, target_db):
    intervals = [
        "0", "1 day", "-1 day", "1 mon", "-1 mon -1 day", "1 year 2 mons 3 days 04:05:06.789",
        "-1 year -2 days +03:00", "-00:00:00.5", "25:00:00", "-3 days -04:05:06", "1.5 seconds",
        "100 years", "-7 mons 1 day -00:00:01", "00:00:00.000001",
    ]  # fmt: skip
    values = ", ".join(f"('{iv}'::interval)" for iv in intervals)
    result = await run(target, f"SELECT v FROM (VALUES {values}) AS x(v)")
    conn = await asyncpg.connect(target_db)
    try:
        await conn.execute("SET intervalstyle = 'iso_8601'")
        expected = [r[0] for r in await conn.fetch(f"SELECT v::text FROM (VALUES {values}) AS x(v)")]
    finally:
        await conn.close()
    assert [row[0] for row in result.rows] == expected


async def test_settings_inside_the_statement(target):
    limits = ExecutionLimits(statement_timeout_s=2, row_cap=10, max_bytes=10_000)
    result = await run(
        target,
        "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), "
        "current_setting('transaction_read_only'), current_setting('search_path')",
        limits,
        path=("public", "Mixed Case"),
    )
    assert result.rows == [["2s", "1s", "on", 'public, "Mixed Case", pg_catalog, pg_temp']]


async def test_search_path_is_the_allowed_schemas(target):
    result = await run(target, 'SELECT label FROM "Things"', path=("Mixed Case",))
    assert result.rows == [["one"]]
    with pytest.raises(SqlExecutionError, match='relation "Things" does not exist'):
        await run(target, 'SELECT label FROM "Things"', path=("public",))


async def test_row_cap_stops_a_ten_million_row_result(target):
    limits = ExecutionLimits(statement_timeout_s=5, row_cap=100, max_bytes=1_000_000)
    started = time.monotonic()
    result = await run(target, "SELECT generate_series(1, 10000000) AS n", limits)
    assert time.monotonic() - started < 2  # a server-side cursor: never pulled
    assert result.truncated is True
    assert [r[0] for r in result.rows] == list(range(1, 101))


async def test_exactly_row_cap_rows_is_not_truncated(target):
    limits = ExecutionLimits(statement_timeout_s=5, row_cap=500, max_bytes=1_000_000)
    result = await run(target, "SELECT n FROM wide ORDER BY n", limits)
    assert len(result.rows) == 500 and result.truncated is False


async def test_byte_cap(target):
    limits = ExecutionLimits(statement_timeout_s=5, row_cap=1000, max_bytes=5_000)
    result = await run(target, "SELECT n, pad FROM wide ORDER BY n", limits)
    assert result.truncated is True
    assert result.byte_size == len(msgspec.json.encode(result.rows)) <= 5_000
    one_row = len(msgspec.json.encode([1, "x" * 90])) + 1
    assert result.byte_size + one_row > 5_000  # stopped at the first row that did not fit
    assert [r[0] for r in result.rows] == list(range(1, len(result.rows) + 1))


async def test_statement_timeout_then_the_connection_still_works(target):
    limits = ExecutionLimits(statement_timeout_s=0.3, row_cap=10, max_bytes=10_000)
    started = time.monotonic()
    with pytest.raises(OperationTimeout, match="statement timeout"):
        await run(target, "SELECT pg_sleep(5)", limits)
    assert time.monotonic() - started < 2
    assert (await run(target, "SELECT 1")).rows == [[1]]


async def test_lock_wait_gives_up_quickly(target, target_db):
    holder = await asyncpg.connect(target_db)
    try:
        await holder.execute("BEGIN; LOCK TABLE wide IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(OperationTimeout, match="lock"):
            await run(target, "SELECT count(*) FROM wide")
        assert time.monotonic() - started < 3
    finally:
        await holder.close()
    assert (await run(target, "SELECT count(*) FROM wide")).rows == [[500]]


async def test_unknown_column_message_helps_a_repair_round(target):
    with pytest.raises(SqlExecutionError) as caught:
        await run(target, "SELECT nmae\nFROM wide")
    detail = caught.value.detail
    assert 'column "nmae" does not exist' in detail
    assert "42703" in detail
    assert "LINE 1: SELECT nmae\n               ^" in detail


async def test_hint_is_included(target):
    with pytest.raises(SqlExecutionError) as caught:
        await run(target, "SELECT w.pads FROM wide w")
    assert "does not exist" in caught.value.detail
    with pytest.raises(SqlExecutionError, match="HINT: No function matches"):
        await run(target, "SELECT lower(1, 2)")


async def test_runtime_errors_are_execution_errors(target):
    with pytest.raises(SqlExecutionError, match="division by zero"):
        await run(target, "SELECT n / 0 FROM wide")
    with pytest.raises(SqlExecutionError, match="operator does not exist"):
        await run(target, "SELECT n FROM wide WHERE pad = 1")


async def test_multi_statement_strings_are_refused_by_the_protocol(target):
    with pytest.raises(SqlExecutionError, match="multiple commands"):
        await run(target, "SELECT 1; DROP TABLE wide")
    assert (await run(target, "SELECT count(*) FROM wide")).rows == [[500]]
    assert (await run(target, "SELECT 1;")).rows == [[1]]  # one trailing semicolon is fine


async def test_writes_fail_in_the_read_only_transaction(target):
    with pytest.raises(SqlExecutionError, match="read-only transaction"):
        await run(target, "WITH x AS (DELETE FROM wide RETURNING n) SELECT count(*) FROM x")
    with pytest.raises(SqlExecutionError, match="read-only transaction"):
        await run(target, "SELECT nextval('seq')")
    assert (await run(target, "SELECT count(*) FROM wide")).rows == [[500]]


async def test_pooled_connection_has_no_leftover_settings(target):
    await run(target, "SELECT 1", ExecutionLimits(statement_timeout_s=3, row_cap=5, max_bytes=1000))
    # Even a session-level set_config (the guard forbids it) dies with the rollback / RESET ALL.
    await run(
        target, "SELECT set_config('lock_timeout', '123s', false), set_config('search_path', 'x', false)"
    )
    async with target._pool.acquire() as conn:
        assert not conn.is_in_transaction()
        settings = await conn.fetchrow(
            "SELECT current_setting('statement_timeout') AS st, current_setting('lock_timeout') AS lt, "
            "current_setting('idle_in_transaction_session_timeout') AS it, "
            "current_setting('search_path') AS sp"
        )
    assert dict(settings) == {"st": "0", "lt": "0", "it": "0", "sp": '"$user", public'}


async def test_stale_pooled_connection_is_replaced(target, target_db):
    await run(target, "SELECT 1")
    admin = await asyncpg.connect(target_db)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'sqlagent-executor'"
        )
    finally:
        await admin.close()
    assert killed == 1
    await asyncio.sleep(0.1)
    assert (await run(target, "SELECT 2")).rows == [[2]]


async def _active_sleeps(admin: asyncpg.Connection) -> list[asyncpg.Record]:
    return await admin.fetch(
        "SELECT pid, state FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'sqlagent-executor' AND query LIKE '%pg_sleep(30)%' AND state = 'active'"
    )


async def test_task_cancellation_stops_the_statement_on_the_server(target, target_db):
    admin = await asyncpg.connect(target_db)
    try:
        task = asyncio.create_task(
            run(
                target,
                "SELECT pg_sleep(30)",
                ExecutionLimits(statement_timeout_s=60, row_cap=1, max_bytes=100),
            )
        )
        for _ in range(100):
            if await _active_sleeps(admin):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the statement never showed up in pg_stat_activity")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        started = time.monotonic()
        while await _active_sleeps(admin):
            assert time.monotonic() - started < 2, "pg_sleep still running after cancellation"
            await asyncio.sleep(0.05)
        states = await admin.fetch(
            "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'sqlagent-executor'"
        )
        assert [r["state"] for r in states] in ([], ["idle"])  # never "idle in transaction"
    finally:
        await admin.close()
    assert (await run(target, "SELECT 3")).rows == [[3]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_target_down_is_unavailable_after_retries():
    url = f"postgresql://reader:s3cret@127.0.0.1:{_free_port()}/nowhere"
    target = await PostgresTarget.open(DataSource(name="down", url=url, dialect="postgresql"))
    try:
        started = time.monotonic()
        with pytest.raises(TargetUnavailable) as caught:
            await run(target, "SELECT 1")
        assert 0.5 < time.monotonic() - started < 5  # three tries with a short backoff
        assert "down" in caught.value.detail and "s3cret" not in caught.value.detail
    finally:
        await target.close()
    with pytest.raises(TargetUnavailable):
        await PostgresTarget.open(DataSource(name="down", url=url, dialect="postgresql"), min_size=1)


async def test_unknown_database_is_unavailable_without_retrying(target_db):
    url = target_db.rsplit("/", 1)[0] + "/sqlagent_no_such_db"
    target = await PostgresTarget.open(DataSource(name="gone", url=url, dialect="postgresql"))
    try:
        started = time.monotonic()
        with pytest.raises(TargetUnavailable, match="does not exist"):
            await run(target, "SELECT 1")
        assert time.monotonic() - started < 0.5
    finally:
        await target.close()


async def test_client_deadline_backs_up_the_server_timeout(target, target_db, monkeypatch):
    import worker.pipeline.execute as execute

    monkeypatch.setattr(execute, "_CLIENT_GRACE_S", -0.7)  # the client gives up before the server
    limits = ExecutionLimits(statement_timeout_s=1.0, row_cap=1, max_bytes=100)
    started = time.monotonic()
    with pytest.raises(OperationTimeout, match="longer than 1 s"):
        await run(target, "SELECT pg_sleep(30)", limits)
    assert time.monotonic() - started < 0.9
    admin = await asyncpg.connect(target_db)
    try:
        await asyncio.sleep(0.1)
        assert await _active_sleeps(admin) == []
    finally:
        await admin.close()
    assert (await run(target, "SELECT 4")).rows == [[4]]
