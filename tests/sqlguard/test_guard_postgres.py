"""The PostgreSQL guard against its corpus, without a database (see test_guard_postgres_db.py)."""

from __future__ import annotations

import re

import pytest
from corpus_postgres import ATTACKS, POLICY, SAFE

from shared.pipeline_errors import SqlRejected
from shared.sqlguard import PostgresPolicy, check_postgres


def _id(sql: str) -> str:
    return sql[:60].encode("unicode_escape").decode()


def test_corpus_is_big_enough() -> None:
    assert len(ATTACKS) >= 150
    assert len(SAFE) >= 60
    assert len({sql for sql, _ in ATTACKS}) == len(ATTACKS), "duplicate attack"


@pytest.mark.parametrize(("sql", "rule"), ATTACKS, ids=[_id(sql) for sql, _ in ATTACKS])
def test_attack_is_rejected(sql: str, rule: str) -> None:
    with pytest.raises(SqlRejected) as caught:
        check_postgres(sql, POLICY)
    assert caught.value.rule == rule, caught.value.detail
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", caught.value.rule)
    assert caught.value.error_code == "SQL_REJECTED"


@pytest.mark.parametrize("sql", SAFE, ids=[_id(sql) for sql in SAFE])
def test_safe_query_passes_and_normalises_stably(sql: str) -> None:
    normalised = check_postgres(sql, POLICY)
    assert not normalised.rstrip().endswith(";")
    assert "--" not in normalised or "--" in sql  # comments are gone (a literal may hold --)
    assert check_postgres(normalised, POLICY) == normalised


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("select pg_sleep(1)", "function pg_sleep"),
        ("select pg_catalog.set_config('a', 'b', false)", "function pg_catalog.set_config"),
        ("select * from pg_authid", "relation pg_authid"),
        ("select * from information_schema.tables", "schema information_schema"),
        ("select 'x'::regclass", "type regclass"),
        ("select xmin from orders", "system column xmin"),
        ("delete from orders", "DELETE"),
        ("with gone as (delete from orders returning 1) select 1", "gone is DELETE"),
        ("select 1; select 2", "found 2"),
    ],
)
def test_detail_names_what_was_found(sql: str, named: str) -> None:
    with pytest.raises(SqlRejected) as caught:
        check_postgres(sql, POLICY)
    assert named in caught.value.detail


def test_output_is_reserialised_and_fully_qualified() -> None:
    sql = "select count(*), lower(name) from customers /* hi */ where id > 1;"
    assert check_postgres(sql, POLICY) == (
        "SELECT pg_catalog.count(*), pg_catalog.lower(name) FROM public.customers WHERE id > 1"
    )


def test_unqualified_names_resolve_in_search_path_order() -> None:
    policy = PostgresPolicy(
        allowed_tables=frozenset({("a", "t"), ("b", "t")}),
        search_path=("b", "a"),
    )
    assert check_postgres("select * from t", policy) == "SELECT * FROM b.t"


def test_excluded_table_earlier_in_search_path_cannot_shadow_the_allowed_one() -> None:
    # public.t exists but is excluded; sales.t is allowed. PostgreSQL alone would resolve `t`
    # to public.t; the rewritten statement pins it to sales.t.
    policy = PostgresPolicy(allowed_tables=frozenset({("sales", "t")}), search_path=("public", "sales"))
    assert check_postgres("select * from t", policy) == "SELECT * FROM sales.t"


def test_cte_references_stay_unqualified() -> None:
    out = check_postgres("with orders as (select 1 as id) select id from orders", POLICY)
    assert out == "WITH orders AS (SELECT 1 AS id) SELECT id FROM orders"


def test_identifier_case_follows_postgresql() -> None:
    assert check_postgres('select 1 from "MixedCase"', POLICY) == 'SELECT 1 FROM public."MixedCase"'
    assert check_postgres("select 1 from ORDERS", POLICY) == "SELECT 1 FROM public.orders"
    for sql in ('select 1 from "Orders"', "select 1 from MixedCase"):
        with pytest.raises(SqlRejected, match="relation_not_allowed"):
            check_postgres(sql, POLICY)


@pytest.mark.parametrize(
    "sql",
    [
        "select " + "(" * 5000 + "1" + ")" * 5000,
        "select " + " || ".join(["'a'"] * 5000),
        "select 1 where " + "not " * 5000 + "true",
        "select " + "array[" * 2000 + "1" + "]" * 2000,
        "select * from orders where id in " + "(select id from orders where id in " * 500 + "(1)" + ")" * 500,
        "select * from " + "(select * from " * 300 + "orders" + ") s" * 300,
    ],
    ids=["parens", "concat", "not", "arrays", "in-subqueries", "from-subqueries"],
)
def test_deep_nesting_is_refused_or_passes_but_never_crashes(sql: str) -> None:
    try:
        check_postgres(sql, POLICY)
    except SqlRejected as exc:
        assert exc.rule in {"too_complex", "parse_error", "too_long"}


def test_policy_is_frozen_and_hashable() -> None:
    with pytest.raises(AttributeError):
        POLICY.search_path = ("pg_catalog",)  # type: ignore[misc]
    assert hash(POLICY) == hash(PostgresPolicy(POLICY.allowed_tables, POLICY.search_path))
