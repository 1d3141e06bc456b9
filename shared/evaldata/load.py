"""Load the Defog databases into PostgreSQL, and write the targets file that names them.

One database per Defog database, called `<prefix>_<db>`, each dump applied in one transaction.
The dumps are our own bundled, trusted files (not generated SQL), so the whole file goes through
asyncpg's simple-query `execute`. Several dumps insert rows relative to `CURRENT_DATE`: reload on
the day you evaluate "last N days" questions (an existing `<prefix>_<db>` is dropped and rebuilt).

    python -m shared.evaldata.load --admin-url postgresql://postgres@127.0.0.1/postgres \\
        --prefix defog --targets-out defog.toml
    sqlagent eval --questions questions_gen_postgres --targets defog.toml
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.evaldata import DEFOG_DATABASES, dump_path

__all__ = ["database_url", "drop_defog_databases", "load_defog_databases", "targets_toml"]

# Tables outside `public`: the data source must name their schema (it is not on search_path).
SCHEMAS: dict[str, tuple[str, ...]] = {"ewallet": ("consumer_div",)}
_PREFIX = re.compile(r"^[a-z_][a-z0-9_]*$")
_MAX_IDENTIFIER = 63


def _names(prefix: str, databases: Iterable[str]) -> dict[str, str]:
    if not _PREFIX.match(prefix):
        raise ValueError(f"prefix {prefix!r}: use lower-case letters, digits and _ (a PostgreSQL name)")
    names = {}
    for db in databases:
        dump_path(db)  # refuses unknown names
        name = f"{prefix}_{db}"
        if len(name) > _MAX_IDENTIFIER:
            raise ValueError(f"prefix {prefix!r} is too long: {name!r} exceeds 63 characters")
        names[db] = name
    return names


def database_url(admin_url: str, database: str) -> str:
    """`admin_url` pointing at another database on the same server (credentials kept)."""
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def _load_one(url: str, dump: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(dump)
    finally:
        await conn.close()


async def load_defog_databases(
    admin_url: str, *, prefix: str, databases: Sequence[str] = DEFOG_DATABASES
) -> dict[str, str]:
    """Create `<prefix>_<db>` for each database (dropping an old one) and load its dump.
    Returns {Defog db name: URL of the loaded database}. `admin_url` needs CREATEDB."""
    names = _names(prefix, databases)
    conn = await asyncpg.connect(admin_url)
    try:
        for name in names.values():
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    urls = {db: database_url(admin_url, name) for db, name in names.items()}
    try:
        await asyncio.gather(
            *(_load_one(urls[db], dump_path(db).read_text(encoding="utf-8")) for db in names)
        )
    except BaseException:
        await drop_defog_databases(admin_url, prefix=prefix, databases=databases)
        raise
    return urls


async def drop_defog_databases(
    admin_url: str, *, prefix: str, databases: Sequence[str] = DEFOG_DATABASES
) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        for name in _names(prefix, databases).values():
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def targets_toml(urls: Mapping[str, str]) -> str:
    """A targets file (SPEC "Targets file") with one data source per database, named after it."""
    blocks = []
    for db, url in urls.items():
        # JSON strings are valid TOML basic strings (same escapes).
        lines = [
            f"[targets.{db}]",
            f"url = {json.dumps(url)}",
            f"description = {json.dumps(f'Defog evaluation database {db!r}')}",
        ]
        if db in SCHEMAS:
            lines.append(f"schemas = {json.dumps(list(SCHEMAS[db]))}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m shared.evaldata.load",
        description="Load the bundled Defog databases into PostgreSQL and write a targets file.",
    )
    parser.add_argument(
        "--admin-url", required=True, help="a PostgreSQL URL of a role that may CREATE DATABASE"
    )
    parser.add_argument(
        "--prefix", default="defog", help="database names become PREFIX_<db> (default: defog)"
    )
    parser.add_argument("--targets-out", type=Path, help="write the targets TOML here (default: stdout)")
    parser.add_argument("--drop", action="store_true", help="drop the databases instead of loading them")
    args = parser.parse_args(argv)
    try:
        if args.drop:
            asyncio.run(drop_defog_databases(args.admin_url, prefix=args.prefix))
            return
        urls = asyncio.run(load_defog_databases(args.admin_url, prefix=args.prefix))
    except (OSError, asyncpg.PostgresError, ValueError) as exc:
        sys.exit(f"could not load the Defog databases: {exc}")
    text = targets_toml(urls)
    if args.targets_out:
        args.targets_out.write_text(text, encoding="utf-8")
        print(f"loaded {len(urls)} databases; targets file: {args.targets_out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
