from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import ConfigError, load_settings


def test_defaults_are_the_embedded_setup() -> None:
    s = load_settings({})
    assert s.database.url == "sqlite:///var/sqlagent.db"
    assert s.database.dialect == "sqlite"
    assert s.broker.embedded and s.broker.redis_url is None
    assert not s.llm.configured
    assert s.llm.model == "gpt-4o-mini"
    assert (s.agent.max_rounds, s.agent.row_cap, s.agent.result_max_bytes) == (3, 10_000, 20_000_000)
    assert s.security.cookie_secure and s.security.rate_limits
    default = s.data_source("default")
    assert default is not None and default.dialect == "sqlite" and "immutable=1" in default.url


def test_redis_defaults_to_the_broker() -> None:
    s = load_settings({"SQLAGENT_BROKER_URL": "redis://127.0.0.1:6379/3"})
    assert not s.broker.embedded
    assert s.broker.redis_url == "redis://127.0.0.1:6379/3"


def test_llm_counts_as_configured_with_a_base_url_or_a_key() -> None:
    assert load_settings({"SQLAGENT_LLM_BASE_URL": "http://127.0.0.1:9/v1"}).llm.configured
    assert load_settings({"OPENAI_API_KEY": "sk-x"}).llm.api_key == "sk-x"
    assert load_settings({"SQLAGENT_LLM_API_KEY": "a", "OPENAI_API_KEY": "b"}).llm.api_key == "a"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SQLAGENT_DATABASE_URL": "mysql://x"}, "SQLAGENT_DATABASE_URL"),
        ({"SQLAGENT_BROKER_URL": "amqp://guest@localhost"}, "SQLAGENT_BROKER_URL"),
        ({"SQLAGENT_MAX_ROUNDS": "0"}, "SQLAGENT_MAX_ROUNDS"),
        ({"SQLAGENT_ROW_CAP": "many"}, "SQLAGENT_ROW_CAP"),
        ({"SQLAGENT_LLM_TIMEOUT_S": "-1"}, "SQLAGENT_LLM_TIMEOUT_S"),
        ({"SQLAGENT_COOKIE_SECURE": "maybe"}, "SQLAGENT_COOKIE_SECURE"),
        ({"SQLAGENT_LOG_FORMAT": "xml"}, "SQLAGENT_LOG_FORMAT"),
        ({"SQLAGENT_TARGET_URL": "oracle://x"}, "SQLAGENT_TARGET_URL"),
        ({"SQLAGENT_TARGETS_FILE": "/nonexistent/targets.toml"}, "SQLAGENT_TARGETS_FILE"),
    ],
)
def test_a_wrong_value_names_its_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.variable == variable
    assert str(info.value).startswith(variable + ":")
    assert "\n" not in str(info.value)


def test_targets_file(tmp_path: Path) -> None:
    targets = tmp_path / "targets.toml"
    targets.write_text(
        """
[targets.sales]
url = "postgresql://reader@db.internal/sales"
description = "Orders"
schemas = ["public", "reporting"]
exclude = ["public.Salaries"]
sample_values = true

[targets.local]
url = "sqlite:///data/local.db"
"""
    )
    s = load_settings({"SQLAGENT_TARGETS_FILE": str(targets), "SQLAGENT_TARGET_URL": "postgresql://r@h/db"})
    assert [d.name for d in s.data_sources] == ["default", "sales", "local"]
    sales = s.data_source("sales")
    assert sales is not None
    assert sales.schemas == ("public", "reporting")
    assert sales.exclude == ("public.salaries",)
    assert sales.sample_values and sales.dialect == "postgresql"
    assert s.data_source("local").dialect == "sqlite"  # type: ignore[union-attr]


def test_targets_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[targets.x]\nurl = 'postgresql://h/d'\nschemas = 'public'\n")
    with pytest.raises(ConfigError, match="schemas must be a list"):
        load_settings({"SQLAGENT_TARGETS_FILE": str(bad)})
    bad.write_text("[targets.x\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"SQLAGENT_TARGETS_FILE": str(bad)})
    bad.write_text("[targets.x]\nurl = 'postgresql://h/d'\npasword = 'x'\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        load_settings({"SQLAGENT_TARGETS_FILE": str(bad)})


def test_cli_stops_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "SQLAGENT_DATABASE_URL": "mysql://nope"}
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0
    assert "SQLAGENT_DATABASE_URL" in proc.stderr
