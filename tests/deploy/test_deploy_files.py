"""deploy/: the files a container engine or a cluster would run, checked without either — the
compose file and its variables, the Kubernetes manifests and kustomization, the Dockerfile's
commands against the package — plus the sample target's SQL loaded into the real PostgreSQL."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import tomllib
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from support.pg import create_pg_database, drop_pg_database, pg_url

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

# SPEC "Configuration", every row, plus Flower's own login setting.
SPEC_VARIABLES = {
    "SQLAGENT_DATABASE_URL",
    "SQLAGENT_BROKER_URL",
    "SQLAGENT_REDIS_URL",
    "SQLAGENT_TARGET_URL",
    "SQLAGENT_TARGETS_FILE",
    "SQLAGENT_LLM_BASE_URL",
    "SQLAGENT_LLM_API_KEY",
    "SQLAGENT_LLM_MODEL",
    "SQLAGENT_LLM_TIMEOUT_S",
    "SQLAGENT_LLM_MAX_RETRIES",
    "SQLAGENT_MAX_ROUNDS",
    "SQLAGENT_STATEMENT_TIMEOUT_S",
    "SQLAGENT_ATTEMPT_DEADLINE_S",
    "SQLAGENT_ROW_CAP",
    "SQLAGENT_RESULT_MAX_BYTES",
    "SQLAGENT_RESULT_TTL_DAYS",
    "SQLAGENT_COOKIE_SECURE",
    "SQLAGENT_RATE_LIMITS",
    "SQLAGENT_RATE_SUBMIT_PER_MIN",
    "SQLAGENT_RATE_LOGIN_FAILURES_PER_15MIN",
    "SQLAGENT_RATE_GENERAL_PER_MIN",
    "SQLAGENT_RATE_ADMIN_PER_MIN",
    "SQLAGENT_TRUSTED_PROXIES",
    "SQLAGENT_LOG_FORMAT",
    "SQLAGENT_TOKEN",
    "FLOWER_BASIC_AUTH",
}
# Read by `sqlagent ask` on a user's machine, not by any service.
CLIENT_ONLY = {"SQLAGENT_TOKEN"}
CORE_SERVICES = {"postgres", "redis", "migrate", "api", "worker", "flower"}
APP_PODS = [("Deployment", "api"), ("Deployment", "worker"), ("Deployment", "flower"), ("Job", "migrate")]
ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def env_example() -> dict[str, str]:
    """Active `NAME=value` lines of env.example (commented-out examples are documentation only)."""
    active: dict[str, str] = {}
    for number, line in enumerate((DEPLOY / "env.example").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = ASSIGNMENT.match(line)
        assert match and not match.group(1), f"env.example:{number} is not NAME=value: {line!r}"
        name = match.group(2)
        assert name not in active, f"env.example:{number}: {name} is set twice"
        active[name] = match.group(3)
    return active


def compose_text() -> str:
    return (DEPLOY / "docker-compose.yml").read_text()


def compose() -> dict[str, Any]:
    return yaml.safe_load(compose_text())


def compose_variables(text: str) -> set[str]:
    """Names compose interpolates: `${NAME…}` and `$NAME`, nested ones included; `$$` is a literal $."""
    text = text.replace("$$", "")
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text)) | set(
        re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text)
    )


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    return docs


def objects() -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in manifests()}


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


# ---- compose ------------------------------------------------------------------------------------


def test_compose_names_every_service_and_profiles_only_the_sample_target() -> None:
    services = compose()["services"]
    assert set(services) >= CORE_SERVICES
    profiled = {name: s["profiles"] for name, s in services.items() if "profiles" in s}
    assert profiled == {"sample-db": ["sample"]}


def test_api_and_worker_start_after_migrate_succeeded() -> None:
    services = compose()["services"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_roles_share_one_image_and_pick_their_command() -> None:
    services = compose()["services"]
    images = {services[name]["image"] for name in ("migrate", "api", "worker", "flower")}
    assert images == {"${SQLAGENT_IMAGE:-sqlagent:local}"}
    assert services["api"]["command"][0] == "serve"
    worker = services["worker"]["command"]
    assert worker[0] == "worker" and "--concurrency" in worker
    flower = services["flower"]
    assert flower["entrypoint"] == ["celery"]
    assert flower["command"] == ["-A", "worker.celery_app", "flower", "--port=5555"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert flower["environment"]["SQLAGENT_HEALTHCHECK_URL"].endswith(":5555/healthcheck")


def test_worker_can_scale() -> None:
    worker = compose()["services"]["worker"]
    # --scale refuses a fixed container name or host port.
    assert "container_name" not in worker and "ports" not in worker


def test_redis_never_evicts() -> None:
    redis = compose()["services"]["redis"]
    command = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
    assert "--maxmemory-policy noeviction" in command
    assert "--appendonly yes" in command


def test_every_compose_variable_is_documented_in_env_example() -> None:
    used = compose_variables(compose_text())
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_BASIC_AUTH"} <= used
    assert used - set(env_example()) == set()


def test_env_example_documents_every_spec_setting() -> None:
    assert SPEC_VARIABLES - set(env_example()) == set()


def test_services_get_every_setting_and_secrets_only_by_reference() -> None:
    services = compose()["services"]
    for name in ("migrate", "api", "worker", "flower"):
        env = services[name]["environment"]
        assert SPEC_VARIABLES - CLIENT_ONLY - {"FLOWER_BASIC_AUTH"} <= set(env), name
        for key in SPEC_VARIABLES & set(env):
            assert env[key].startswith(f"${{{key}"), f"{name}.{key} must come from deploy/.env"
    # Flower's login reaches only Flower.
    with_login = [n for n, s in services.items() if "FLOWER_BASIC_AUTH" in (s.get("environment") or {})]
    assert with_login == ["flower"]
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key:
                assert str(value).startswith("${"), f"{name}.{key} must come from deploy/.env"


def test_required_secrets_are_empty_in_env_example() -> None:
    """Compose must stop on them (`:?`) until the operator chooses real ones."""
    example = env_example()
    text = compose_text()
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_BASIC_AUTH"):
        assert example[name] == ""
        assert f"${{{name}:?" in text


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"the docker compose plugin is not installed: {probe.stderr.strip()[:120]}")
    env_file = tmp_path / ".env"
    filled = {name: value or "x" for name, value in env_example().items()}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in filled.items()))
    done = subprocess.run(
        [
            docker,
            "compose",
            "-f",
            str(DEPLOY / "docker-compose.yml"),
            "--env-file",
            str(env_file),
            "--profile",
            "sample",
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# ---- Kubernetes ---------------------------------------------------------------------------------


def test_every_manifest_parses_and_names_itself() -> None:
    docs = manifests()
    assert docs
    for path, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), path.name


def test_manifests_hold_the_spec_set() -> None:
    found = objects()
    for key in [
        ("Deployment", "api"),
        ("Deployment", "worker"),
        ("Deployment", "flower"),
        ("HorizontalPodAutoscaler", "worker"),
        ("Job", "migrate"),
        ("ConfigMap", "sqlagent-config"),
        ("Secret", "sqlagent-secrets"),
        ("Service", "api"),
        ("Service", "flower"),
        ("Service", "postgres"),
        ("Service", "redis"),
    ]:
        assert key in found, key
    target = found[("HorizontalPodAutoscaler", "worker")]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "worker")
    for name in ("postgres", "redis"):
        assert found[("Service", name)]["spec"]["type"] == "ExternalName"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert [i["name"] for i in kustomization["images"]] == ["sqlagent"]


def test_api_probes_and_pod_hardening() -> None:
    found = objects()
    api = pod_spec(found[("Deployment", "api")])["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    flower = pod_spec(found[("Deployment", "flower")])["containers"][0]
    assert flower["command"] == ["celery"] and flower["args"][:3] == ["-A", "worker.celery_app", "flower"]
    assert flower["livenessProbe"]["httpGet"]["path"] == "/healthcheck"
    assert pod_spec(found[("Job", "migrate")])["containers"][0]["args"] == ["migrate"]
    assert pod_spec(found[("Deployment", "worker")])["containers"][0]["args"][0] == "worker"
    for key in APP_PODS:
        spec = pod_spec(found[key])
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        for container in spec["containers"]:
            assert container["image"].split(":")[0] == "sqlagent", key
            hardening = container["securityContext"]
            assert hardening["allowPrivilegeEscalation"] is False, key
            assert hardening["readOnlyRootFilesystem"] is True, key
            assert hardening["capabilities"]["drop"] == ["ALL"], key


def test_pods_reference_only_defined_config_and_every_setting_is_provided() -> None:
    found = objects()
    provided: set[str] = set()
    for key in APP_PODS:
        for container in pod_spec(found[key])["containers"]:
            for source in container.get("envFrom", []):
                kind = "ConfigMap" if "configMapRef" in source else "Secret"
                name = (source.get("configMapRef") or source["secretRef"])["name"]
                assert (kind, name) in found, (key, name)
                source_object = found[(kind, name)]
                provided |= set(source_object.get("data") or source_object.get("stringData") or {})
        for volume in pod_spec(found[key]).get("volumes", []):
            if "secret" in volume:
                assert ("Secret", volume["secret"]["secretName"]) in found
    assert SPEC_VARIABLES - CLIENT_ONLY - provided == set()
    # No typos: every key is a documented variable.
    assert provided - set(env_example()) == set()


def test_kustomize_renders_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rendered = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert len(rendered) == len(manifests())
    namespaced = [d for d in rendered if d["kind"] != "Namespace"]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"sqlagent"}


# ---- the image ----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_entrypoint_is_a_console_script_of_the_package() -> None:
    instructions = dockerfile_instructions()
    entrypoint = json.loads(next(arg for op, arg in instructions if op == "ENTRYPOINT"))
    cmd = json.loads(next(arg for op, arg in instructions if op == "CMD"))
    assert entrypoint == ["sqlagent"]
    assert cmd == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, _, function = pyproject["project"]["scripts"]["sqlagent"].partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    # The CMD is a command the CLI accepts.
    from cli.main import build_parser

    assert build_parser().parse_args(cmd).port == 8000
    assert build_parser().parse_args(["worker", "--concurrency", "32"]).concurrency == 32


def test_dockerfile_is_multi_stage_slim_non_root_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions()
    stages = [arg for op, arg in instructions if op == "FROM"]
    assert len(stages) == 2 and all(s.startswith("${PYTHON_IMAGE}") for s in stages)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in (DEPLOY / "Dockerfile").read_text()
    users = [arg for op, arg in instructions if op == "USER"]
    assert users[-1] == "10001:10001"
    healthcheck = next(arg for op, arg in instructions if op == "HEALTHCHECK")
    assert "urllib.request" in healthcheck and "SQLAGENT_HEALTHCHECK_URL" in healthcheck
    assert any(op == "COPY" and arg.startswith("--from=builder /opt/sqlagent") for op, arg in instructions)


def test_dockerfile_copies_every_package_and_installs_flower() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {arg.split()[0] for op, arg in dockerfile_instructions() if op == "COPY"}
    assert packages <= copied
    assert "README.md" in copied  # pyproject's `readme`, needed to build the wheel
    assert "flower" in pyproject["project"]["optional-dependencies"]
    assert "['optional-dependencies']['flower']" in (DEPLOY / "Dockerfile").read_text()


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".git", "**/.env", "deploy"} <= patterns
    for op, arg in dockerfile_instructions():
        if op == "COPY" and not arg.startswith("--from"):
            assert arg.split()[0] not in patterns, arg


def test_flower_app_module_and_healthcheck_route_exist() -> None:
    module = importlib.import_module("worker.celery_app")
    assert module.app.main == "sqlagent"  # what `celery -A worker.celery_app` finds
    from flower.urls import handlers
    from flower.views.monitor import Healthcheck
    from tornado.web import URLSpec

    specs = [spec if isinstance(spec, URLSpec) else URLSpec(*spec) for spec in handlers]
    routes = {spec.regex.pattern: spec.handler_class for spec in specs}
    assert routes["/healthcheck$"] is Healthcheck
    # Probes carry no credentials: the route must not sit behind Flower's basic auth
    # (tornado's @authenticated wraps the handler method).
    assert not hasattr(Healthcheck.get, "__wrapped__")


# ---- the sample target --------------------------------------------------------------------------


def test_example_targets_file_loads() -> None:
    from shared.settings import load_targets_file

    sources = load_targets_file(DEPLOY / "targets" / "targets.example.toml")
    assert [(s.name, s.dialect, s.schemas) for s in sources] == [("sample", "postgresql", ("shop",))]
    assert "@sample-db:5432/sample" in sources[0].url
    assert "sample-db" in compose()["services"]


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
async def test_sample_target_initdb_loads_and_its_reader_is_read_only() -> None:
    database = await create_pg_database("sqlagent_sample")
    role = f"sqlagent_reader_{uuid.uuid4().hex[:8]}"
    try:
        initdb = DEPLOY / "sample" / "initdb"
        loaded = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", pg_url(database), "-f", initdb / "01-shop.sql"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert loaded.returncode == 0, loaded.stderr
        # The image's entrypoint runs this script with these variables set; the role name is made
        # unique because roles are global to the server.
        script = (initdb / "02-readonly-role.sh").read_text()
        script = script.replace("/sqlagent-sql/", f"{DEPLOY / 'sql'}/")
        script = script.replace("role=sqlagent_reader", f"role={role}")
        env = {
            **os.environ,
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": database,
            "PGHOST": "127.0.0.1",
            "SAMPLE_READER_PASSWORD": "reader-password",
        }
        ran = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=60)
        assert ran.returncode == 0, ran.stderr
        conn = await asyncpg.connect(pg_url(database).replace("postgres@", f"{role}:reader-password@"))
        try:
            assert await conn.fetchval("SELECT count(*) FROM shop.orders") == 1000
            assert await conn.fetchval("SELECT count(*) FROM shop.order_items") > 1000
            assert await conn.fetchval("SHOW default_transaction_read_only") == "on"
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT * FROM internal.staff_salaries")
        finally:
            await conn.close()
    finally:
        await drop_pg_database(database)
        admin = await asyncpg.connect(pg_url("postgres"))
        try:
            await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await admin.close()
