"""Settings from `SQLAGENT_*` environment variables, built once per process.

Built by `load_settings()` in the API's app factory and in the worker's lazy Celery
configuration, never at import time, so tests can build as many as they like."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from shared.targets.config import DataSource


class ConfigError(Exception):
    """A wrong or missing setting. `str()` is the one line shown at start-up."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class DatabaseSettings(msgspec.Struct, frozen=True):
    url: str

    @property
    def dialect(self) -> Literal["sqlite", "postgresql"]:
        return "sqlite" if self.url.startswith("sqlite:") else "postgresql"

    @property
    def sqlite_path(self) -> Path:
        return sqlite_path(self.url)


class BrokerSettings(msgspec.Struct, frozen=True):
    # None: embedded mode, one worker inside the API process over kombu's memory transport.
    broker_url: str | None
    # None: in-process event bus and rate-limit counters.
    redis_url: str | None

    @property
    def embedded(self) -> bool:
        return self.broker_url is None


class LlmSettings(msgspec.Struct, frozen=True):
    base_url: str | None
    api_key: str | None
    model: str
    timeout_s: float
    max_retries: int

    @property
    def configured(self) -> bool:
        return bool(self.base_url or self.api_key)


class AgentSettings(msgspec.Struct, frozen=True):
    max_rounds: int
    statement_timeout_s: float
    attempt_deadline_s: float
    row_cap: int
    result_max_bytes: int
    result_ttl_days: int


class SecuritySettings(msgspec.Struct, frozen=True):
    cookie_secure: bool
    rate_limits: bool
    rate_submit_per_min: int
    rate_login_failures_per_15min: int
    rate_general_per_min: int
    rate_admin_per_min: int
    trusted_proxies: tuple[str, ...]


class Settings(msgspec.Struct, frozen=True):
    database: DatabaseSettings
    broker: BrokerSettings
    llm: LlmSettings
    agent: AgentSettings
    security: SecuritySettings
    data_sources: tuple[DataSource, ...]
    log_format: Literal["json", "text"]
    # Timings the tests shrink; not part of the public contract.
    lease_s: float = 30.0
    sweep_interval_s: float = 5.0
    # A queued attempt whose message was published this long ago is published again (a broker
    # restart without persistence loses messages); duplicates are harmless, claims are conditional.
    redispatch_after_s: float = 60.0
    # An operator knob (not in SPEC's table): seconds between SSE heartbeat comments.
    sse_heartbeat_s: float = 15.0
    # Port of a worker process's Prometheus endpoint; None: off.
    worker_metrics_port: int | None = None

    def data_source(self, name: str) -> DataSource | None:
        for source in self.data_sources:  # a handful: a loop beats building a dict per call
            if source.name == name:
                return source
        return None


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative/path` or `sqlite:////absolute/path` (SPEC)."""
    rest = url.removeprefix("sqlite:///")
    return Path(rest.split("?", 1)[0])


class _Env:
    """Typed reads of the environment; every error names its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.env.get(name, "").strip()
        return value or default

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"expected an integer, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(name, f"must be at least {minimum}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(name, f"expected a number of seconds, got {raw!r}") from None
        if not value > minimum:
            raise ConfigError(name, f"must be greater than {minimum:g}, got {raw}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(name, f"expected true or false, got {raw!r}")


def _check_database_url(name: str, url: str) -> str:
    if url.startswith("sqlite:///"):
        if not sqlite_path(url).name:
            raise ConfigError(name, "a sqlite URL needs a file path, e.g. sqlite:///var/sqlagent.db")
        return url
    scheme = urlsplit(url).scheme
    if scheme in {"postgresql", "postgres"}:
        return url
    raise ConfigError(name, f"expected sqlite:///PATH or postgresql://..., got scheme {scheme or url!r}")


def _check_redis_url(name: str, url: str | None) -> str | None:
    if url is None:
        return None
    if urlsplit(url).scheme not in {"redis", "rediss"}:
        raise ConfigError(name, f"expected redis://HOST:PORT/N, got {url!r}")
    return url


def _target(name: str, variable: str, spec: Mapping[str, object]) -> DataSource:
    url = spec.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(variable, f"target {name!r} needs a url")
    _check_database_url(variable, url)
    schemas = spec.get("schemas")
    exclude = spec.get("exclude", [])
    if schemas is not None and not (isinstance(schemas, list) and all(isinstance(s, str) for s in schemas)):
        raise ConfigError(variable, f"target {name!r}: schemas must be a list of names")
    if not (isinstance(exclude, list) and all(isinstance(s, str) for s in exclude)):
        raise ConfigError(variable, f"target {name!r}: exclude must be a list of schema.table names")
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(variable, f"target {name!r}: description must be a string")
    sample_values = spec.get("sample_values", False)
    if not isinstance(sample_values, bool):
        raise ConfigError(variable, f"target {name!r}: sample_values must be true or false")
    unknown = set(spec) - {"url", "description", "schemas", "exclude", "sample_values"}
    if unknown:
        raise ConfigError(variable, f"target {name!r}: unknown keys {sorted(unknown)}")
    return DataSource(
        name=name,
        url=url,
        dialect="sqlite" if url.startswith("sqlite:") else "postgresql",
        description=description,
        schemas=tuple(schemas) if schemas is not None else None,
        exclude=tuple(e.lower() for e in exclude),
        sample_values=sample_values,
    )


def load_targets_file(path: Path, variable: str = "SQLAGENT_TARGETS_FILE") -> list[DataSource]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(variable, f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(variable, f"{path} is not valid TOML: {exc}") from None
    targets = data.get("targets", {})
    if not isinstance(targets, dict):
        raise ConfigError(variable, f"{path}: [targets.NAME] tables expected")
    return [_target(name, variable, spec) for name, spec in targets.items()]


def _data_sources(env: _Env) -> tuple[DataSource, ...]:
    sources: list[DataSource] = []
    target_url = env.text("SQLAGENT_TARGET_URL")
    if target_url:
        sources.append(_target("default", "SQLAGENT_TARGET_URL", {"url": target_url}))
    targets_file = env.text("SQLAGENT_TARGETS_FILE")
    if targets_file:
        for source in load_targets_file(Path(targets_file)):
            if any(s.name == source.name for s in sources):
                raise ConfigError("SQLAGENT_TARGETS_FILE", f"data source {source.name!r} is defined twice")
            sources.append(source)
    if not any(s.name == "default" for s in sources) and not targets_file:
        from shared.demo import DEMO_DB_PATH

        sources.append(
            DataSource(
                name="default",
                url=f"sqlite:///{DEMO_DB_PATH}?immutable=1",
                dialect="sqlite",
                description="The bundled demo database: a small shop's customers, orders and products",
            )
        )
    return tuple(sources)


def _port(env: _Env, name: str) -> int | None:
    if env.text(name) is None:
        return None
    port = env.integer(name, 0, minimum=1)
    if port > 65535:
        raise ConfigError(name, f"must be a TCP port (1-65535), got {port}")
    return port


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = _Env(os.environ if environ is None else environ)
    database_url = _check_database_url(
        "SQLAGENT_DATABASE_URL", env.text("SQLAGENT_DATABASE_URL", "sqlite:///var/sqlagent.db") or ""
    )
    broker_url = _check_redis_url("SQLAGENT_BROKER_URL", env.text("SQLAGENT_BROKER_URL"))
    redis_url = _check_redis_url("SQLAGENT_REDIS_URL", env.text("SQLAGENT_REDIS_URL")) or broker_url
    log_format = env.text("SQLAGENT_LOG_FORMAT", "json")
    if log_format not in {"json", "text"}:
        raise ConfigError("SQLAGENT_LOG_FORMAT", f"expected json or text, got {log_format!r}")
    return Settings(
        database=DatabaseSettings(url=database_url),
        broker=BrokerSettings(broker_url=broker_url, redis_url=redis_url),
        llm=LlmSettings(
            base_url=env.text("SQLAGENT_LLM_BASE_URL"),
            api_key=env.text("SQLAGENT_LLM_API_KEY") or env.text("OPENAI_API_KEY"),
            model=env.text("SQLAGENT_LLM_MODEL", "gpt-4o-mini") or "gpt-4o-mini",
            timeout_s=env.number("SQLAGENT_LLM_TIMEOUT_S", 60.0),
            max_retries=env.integer("SQLAGENT_LLM_MAX_RETRIES", 3),
        ),
        agent=AgentSettings(
            max_rounds=env.integer("SQLAGENT_MAX_ROUNDS", 3, minimum=1),
            statement_timeout_s=env.number("SQLAGENT_STATEMENT_TIMEOUT_S", 30.0),
            attempt_deadline_s=env.number("SQLAGENT_ATTEMPT_DEADLINE_S", 300.0),
            row_cap=env.integer("SQLAGENT_ROW_CAP", 10_000, minimum=1),
            result_max_bytes=env.integer("SQLAGENT_RESULT_MAX_BYTES", 20_000_000, minimum=1024),
            result_ttl_days=env.integer("SQLAGENT_RESULT_TTL_DAYS", 30, minimum=1),
        ),
        security=SecuritySettings(
            cookie_secure=env.flag("SQLAGENT_COOKIE_SECURE", True),
            rate_limits=env.flag("SQLAGENT_RATE_LIMITS", True),
            rate_submit_per_min=env.integer("SQLAGENT_RATE_SUBMIT_PER_MIN", 10, minimum=1),
            rate_login_failures_per_15min=env.integer("SQLAGENT_RATE_LOGIN_FAILURES_PER_15MIN", 5, minimum=1),
            rate_general_per_min=env.integer("SQLAGENT_RATE_GENERAL_PER_MIN", 100, minimum=1),
            rate_admin_per_min=env.integer("SQLAGENT_RATE_ADMIN_PER_MIN", 20, minimum=1),
            trusted_proxies=tuple(
                p.strip() for p in (env.text("SQLAGENT_TRUSTED_PROXIES") or "").split(",") if p.strip()
            ),
        ),
        data_sources=_data_sources(env),
        log_format="text" if log_format == "text" else "json",
        lease_s=env.number("SQLAGENT_LEASE_S", 30.0),
        sweep_interval_s=env.number("SQLAGENT_SWEEP_INTERVAL_S", 5.0),
        redispatch_after_s=env.number("SQLAGENT_REDISPATCH_AFTER_S", 60.0),
        sse_heartbeat_s=env.number("SQLAGENT_SSE_HEARTBEAT_S", 15.0),
        worker_metrics_port=_port(env, "SQLAGENT_WORKER_METRICS_PORT"),
    )
