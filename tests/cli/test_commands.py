from __future__ import annotations

import pytest
from support.stack import base_env, cli


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("serve", "--workers", "2"), "SQLAGENT_BROKER_URL"),
        (("worker",), "SQLAGENT_BROKER_URL"),
    ],
)
def test_commands_that_need_a_broker_say_so(tmp_path, args, needle) -> None:  # type: ignore[no-untyped-def]
    result = cli(*args, env=base_env(SQLAGENT_DATABASE_URL=f"sqlite:///{tmp_path}/a.db"))
    assert result.returncode != 0
    assert needle in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_users_create_and_duplicate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = base_env(SQLAGENT_DATABASE_URL=f"sqlite:///{tmp_path}/a.db")
    assert cli("migrate", env=env).returncode == 0
    first = cli("users", "create", "carol", "--admin", "--password-stdin", env=env, stdin="s3cret-pass\n")
    assert first.returncode == 0 and "admin carol" in first.stdout
    again = cli("users", "create", "carol", "--password-stdin", env=env, stdin="x\n")
    assert again.returncode != 0 and "USER_EXISTS" in again.stderr
    import sqlite3

    stored = sqlite3.connect(f"{tmp_path}/a.db").execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("$argon2id$")
