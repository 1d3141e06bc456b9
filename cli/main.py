"""The `sqlagent` command line (SPEC "Command line")."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.settings import ConfigError, Settings, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        sys.exit(f"sqlagent: configuration error: {exc}")


def _migrate(settings: Settings) -> list[str]:
    from shared.db.migrate import migrate

    return asyncio.run(migrate(settings.database.url))


def cmd_migrate(_: argparse.Namespace) -> None:
    settings = _settings()
    applied = _migrate(settings)
    print(
        f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "database is up to date"
    )


def _app(settings: Settings, **kwargs: Any) -> Any:
    from api.app import create_app

    try:
        return create_app(settings, **kwargs)
    except ConfigError as exc:
        sys.exit(f"sqlagent: configuration error: {exc}")


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 by itself; the API decides
    # (SQLAGENT_TRUSTED_PROXIES), so its proxy handling is off.
    import uvicorn

    from shared.heap import frozen_after_start_up
    from shared.logs import setup_logging

    setup_logging(settings.log_format)
    if settings.broker.embedded:
        if workers > 1:
            sys.exit(
                "sqlagent: --workers > 1 needs a broker: set SQLAGENT_BROKER_URL=redis://HOST:PORT/N "
                "(embedded mode runs one API process with its in-process worker)"
            )
        from cli.embedded import embedded_worker

        app = _app(settings, lifespans=[embedded_worker(settings), frozen_after_start_up])
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
            proxy_headers=False,
        )
    elif workers > 1:
        uvicorn.run(
            "api.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
            proxy_headers=False,
        )
    else:
        uvicorn.run(
            _app(settings, lifespans=[frozen_after_start_up]),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            proxy_headers=False,
        )


def cmd_serve(args: argparse.Namespace) -> None:
    _serve(_settings(), args.host, args.port, args.workers)


def _worker_argv(concurrency: int | None) -> list[str]:
    # No mingle/gossip: workers share nothing through them, and they cost a second at start.
    argv = ["worker", "--loglevel", "INFO", "-Q", "sqlagent", "--without-mingle", "--without-gossip"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    return argv


def cmd_worker(args: argparse.Namespace) -> None:
    settings = _settings()
    if settings.broker.embedded:
        sys.exit(
            "sqlagent: a separate worker needs a broker: set SQLAGENT_BROKER_URL=redis://HOST:PORT/N "
            "(without it, `sqlagent serve` runs the worker inside the API process)"
        )
    from shared.logs import setup_logging
    from worker.celery_app import configure

    setup_logging(settings.log_format)
    app = configure(settings)
    app.worker_main(_worker_argv(args.concurrency))


def cmd_up(args: argparse.Namespace) -> None:
    settings = _settings()
    _migrate(settings)
    if settings.broker.embedded:
        _serve(settings, args.host, args.port, 1)
        return
    worker = subprocess.Popen([sys.executable, "-m", "cli.main", "worker"])
    try:
        _serve(settings, args.host, args.port, args.workers)
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()


async def _seed_and_login(settings: Settings) -> str:
    from shared.db.database import open_database
    from shared.demo import load_examples
    from shared.knowledge import repository as knowledge
    from shared.users import repository as users
    from shared.users.passwords import ahash_password

    db = await open_database(settings.database.url)
    try:
        for example in load_examples():
            if not await knowledge.exists_for(db, "default", example.question):
                await knowledge.create(
                    db,
                    question=example.question,
                    sql=example.sql,
                    data_source="default",
                    notes=example.notes,
                    created_by=None,
                )
        found = await users.get_login(db, "demo")
        user = (
            found[0]
            if found
            else await users.create_user(
                db, username="demo", password_hash=await ahash_password("demo"), role="admin"
            )
        )
        _, token = await users.create_token(db, user.id, "demo")
        return token
    finally:
        await db.close()


def cmd_demo(args: argparse.Namespace) -> None:
    os.environ.setdefault("SQLAGENT_DATABASE_URL", "sqlite:///var/demo.db")
    os.environ["SQLAGENT_COOKIE_SECURE"] = "false"
    os.environ.setdefault("SQLAGENT_LOG_FORMAT", "text")
    os.environ.pop("SQLAGENT_BROKER_URL", None)  # embedded defaults, whatever the shell says
    settings = _settings()
    _migrate(settings)
    token = asyncio.run(_seed_and_login(settings))
    base = f"http://{args.host}:{args.port}"
    print(
        f"""
sqlagent demo at {base}  (Ctrl-C stops it)
  login:     demo / demo   (an admin; the demo listens on {args.host} only)
  API token: {token}

  curl -s -X POST {base}/api/queries -H 'Authorization: Bearer {token}' \\
       -H 'Content-Type: application/json' -d '{{"question": "How many customers are there in each country?"}}'
  SQLAGENT_TOKEN={token} .venv/bin/sqlagent ask "Top 5 products by revenue"

  API docs: {base}/schema   LLM: {"configured" if settings.llm.configured else "none (knowledge-base answers only)"}
""",
        flush=True,
    )
    _serve(settings, args.host, args.port, 1)


def cmd_users_create(args: argparse.Namespace) -> None:
    settings = _settings()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if password != getpass.getpass("again: "):
            sys.exit("sqlagent: the passwords differ")
    if not password:
        sys.exit("sqlagent: the password must not be empty")

    async def create() -> None:
        from shared.db.database import is_unique_violation, open_database
        from shared.users import repository as users
        from shared.users.passwords import ahash_password

        db = await open_database(settings.database.url)
        try:
            user = await users.create_user(
                db,
                username=args.name,
                password_hash=await ahash_password(password),
                role="admin" if args.admin else "user",
            )
        except Exception as exc:
            if is_unique_violation(exc):
                sys.exit(f"sqlagent: USER_EXISTS: a user named {args.name!r} exists")
            raise
        finally:
            await db.close()
        print(f"created {user.role} {user.username} (id {user.id})")

    asyncio.run(create())


def cmd_ask(args: argparse.Namespace) -> None:
    from cli.ask import ask

    sys.exit(ask(args.question, server=args.server, token=args.token, data_source=args.data_source))


def cmd_eval(args: argparse.Namespace) -> None:
    from cli.evaluate import run_eval

    sys.exit(run_eval(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sqlagent", description="A self-hosted SQL AI agent.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply app-database migrations").set_defaults(func=cmd_migrate)

    for name, func, help_ in (
        ("serve", cmd_serve, "run the API (with an in-process worker when no broker is configured)"),
        ("up", cmd_up, "API and worker in one command"),
        ("demo", cmd_demo, "the demo on embedded defaults"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        if name != "demo":
            p.add_argument("--workers", type=int, default=1)
        p.set_defaults(func=func)

    p = sub.add_parser("worker", help="run a Celery worker")
    p.add_argument("--concurrency", type=int, default=None)
    p.set_defaults(func=cmd_worker)

    users_parser = sub.add_parser("users", help="manage users")
    users_sub = users_parser.add_subparsers(dest="users_command", required=True)
    p = users_sub.add_parser("create", help="create a user")
    p.add_argument("name")
    p.add_argument("--admin", action="store_true")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(func=cmd_users_create)

    p = sub.add_parser("ask", help="ask a question and print the answer")
    p.add_argument("question")
    p.add_argument("--server", default="http://127.0.0.1:8000")
    p.add_argument("--token", default=os.environ.get("SQLAGENT_TOKEN"))
    p.add_argument("--data-source", default="default")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("eval", help="score a question/gold-SQL set by execution accuracy (in-process)")
    p.add_argument(
        "--questions",
        required=True,
        help="a CSV (Defog's layout or question,sql,data_source), or a bundled set: "
        "questions_gen_postgres, instruct_basic_postgres, instruct_advanced_postgres, idk",
    )
    p.add_argument("--data-source", help="run only this data source's rows (rows without one use it)")
    p.add_argument("--targets", type=Path, help="a targets TOML replacing the configured data sources")
    p.add_argument("--concurrency", type=int, default=4, help="questions run at once (default 4)")
    p.add_argument("--out", type=Path, help="write the report as JSON here")
    p.add_argument("--min-accuracy", type=float, help="exit 1 when the accuracy (0-1) is lower")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
