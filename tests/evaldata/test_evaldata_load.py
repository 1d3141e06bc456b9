"""Loading the bundled Defog dumps into the real PostgreSQL, and the targets file naming them."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest
from support.pg import PG_ADMIN_URL

from shared.evaldata.load import database_url, drop_defog_databases, load_defog_databases, targets_toml
from shared.settings import load_targets_file


async def _exists(name: str) -> bool:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def test_load_query_and_drop(tmp_path: Path) -> None:
    prefix = f"evl_{uuid.uuid4().hex[:8]}"
    urls = await load_defog_databases(PG_ADMIN_URL, prefix=prefix, databases=["restaurants", "ewallet"])
    try:
        assert set(urls) == {"restaurants", "ewallet"}
        assert urls["restaurants"] == database_url(PG_ADMIN_URL, f"{prefix}_restaurants")
        conn = await asyncpg.connect(urls["restaurants"])
        try:
            restaurants = await conn.fetchval("SELECT count(*) FROM restaurant")
            assert restaurants > 0
        finally:
            await conn.close()
        conn = await asyncpg.connect(urls["ewallet"])
        try:
            assert await conn.fetchval("SELECT count(*) FROM consumer_div.users") > 0
        finally:
            await conn.close()

        # Loading again rebuilds from scratch (rows relative to CURRENT_DATE move with the day):
        # the same rows, not twice as many.
        again = await load_defog_databases(PG_ADMIN_URL, prefix=prefix, databases=["restaurants"])
        conn = await asyncpg.connect(again["restaurants"])
        try:
            assert await conn.fetchval("SELECT count(*) FROM restaurant") == restaurants
        finally:
            await conn.close()

        path = tmp_path / "targets.toml"
        path.write_text(targets_toml(urls))
        sources = {s.name: s for s in load_targets_file(path)}
        assert set(sources) == {"restaurants", "ewallet"}
        assert sources["ewallet"].schemas == ("consumer_div",) and sources["restaurants"].schemas is None
        assert (
            sources["restaurants"].url == urls["restaurants"]
            and sources["restaurants"].dialect == "postgresql"
        )
    finally:
        await drop_defog_databases(PG_ADMIN_URL, prefix=prefix, databases=["restaurants", "ewallet"])
    assert not await _exists(f"{prefix}_restaurants") and not await _exists(f"{prefix}_ewallet")


def test_database_url_keeps_credentials_and_options() -> None:
    assert (
        database_url("postgresql://u:p%40ss@h:5433/postgres?sslmode=require", "x_y")
        == "postgresql://u:p%40ss@h:5433/x_y?sslmode=require"
    )


def test_targets_toml_escapes_strings(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(targets_toml({"yelp": 'postgresql://u:a"b\\c@h/d'}))
    (source,) = load_targets_file(path)
    assert source.url == 'postgresql://u:a"b\\c@h/d'


@pytest.mark.parametrize("prefix", ["Bad", "1x", "a-b", "x" * 60, 'a"; DROP'])
async def test_bad_prefixes_are_refused_before_touching_the_server(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        await load_defog_databases("postgresql://nobody@127.0.0.1:1/none", prefix=prefix)


async def test_unknown_database_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Defog database"):
        await load_defog_databases("postgresql://nobody@127.0.0.1:1/none", prefix="x", databases=["pagila"])
