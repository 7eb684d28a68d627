"""docker-compose.yml, deploy/docker/Dockerfile and .dockerignore agree with the code.

No Docker engine is needed: the files are parsed and checked against the settings classes,
the CLI parser and the health routes they rely on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

from services.brain.config import BrainSettings
from services.channels.vapi.settings import VapiSettings
from services.cli import build_parser
from services.common.http import health_router
from services.egress.config import EgressSettings
from services.ingress.config import IngressSettings
from shared.settings import BaseServiceSettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Long-running services (subcommand == service name) and the settings class each one reads.
APP_SERVICES: dict[str, type[BaseServiceSettings]] = {
    "ingress": IngressSettings,
    "brain": BrainSettings,
    "egress": EgressSettings,
}
# Every service running the app image; `topics create` reads only the shared settings.
IMAGE_SERVICES: dict[str, type[BaseServiceSettings]] = {
    **APP_SERVICES,
    "topics": BaseServiceSettings,
}

# Channels with settings of their own, read by whichever app service builds the channel.
CHANNEL_SETTINGS: tuple[type[BaseSettings], ...] = (VapiSettings,)

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?]([^}]*))?\}")


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Environment variable names a settings class reads, one canonical name per field."""
    prefix = cls.model_config.get("env_prefix", "") or ""
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


ALL_SETTING_NAMES: set[str] = set().union(*(env_names(cls) for cls in IMAGE_SERVICES.values()))


def interpolate(value: Any) -> str:
    """A compose environment value as the container sees it when the host sets nothing."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), "docker-compose.yml is missing"
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services = compose["services"]
    assert name in services, f"compose has no `{name}` service"
    return services[name]


def environment(compose: dict[str, Any], name: str) -> dict[str, Any]:
    """The `environment:` of a service as a mapping (list form `K=V` / `K` accepted)."""
    env = service(compose, name).get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in env)
        env = dict(pairs)
    assert isinstance(env, dict)
    return env


def settings_from_compose(
    monkeypatch: pytest.MonkeyPatch,
    compose: dict[str, Any],
    name: str,
    overrides: dict[str, str] | None = None,
) -> BaseServiceSettings:
    """The settings object a container of `name` builds, with nothing set on the host."""
    for var in ALL_SETTING_NAMES:
        monkeypatch.delenv(var, raising=False)
    for var, value in environment(compose, name).items():
        if value is not None:  # `VAR:` without a value is a pass-through, unset here
            monkeypatch.setenv(var, interpolate(value))
    for var, value in (overrides or {}).items():
        monkeypatch.setenv(var, value)
    return IMAGE_SERVICES[name]()


def command(compose: dict[str, Any], name: str) -> list[str]:
    cmd = service(compose, name).get("command")
    assert cmd, f"`{name}` has no command"
    return cmd.split() if isinstance(cmd, str) else [str(part) for part in cmd]


def published_ports(compose: dict[str, Any], name: str) -> list[tuple[int, int]]:
    """(host port, container port) pairs a service publishes."""
    pairs: list[tuple[int, int]] = []
    for entry in service(compose, name).get("ports") or []:
        if isinstance(entry, dict):
            pairs.append((int(entry["published"]), int(entry["target"])))
            continue
        parts = interpolate(entry).split("/")[0].split(":")
        assert len(parts) >= 2, f"`{name}` publishes {entry!r} without a fixed host port"
        pairs.append((int(parts[-2]), int(parts[-1])))
    return pairs


# --- compose: services and commands ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_services_run_their_own_subcommand(compose: dict[str, Any], name: str) -> None:
    cmd = command(compose, name)
    assert cmd == [name]
    assert build_parser().parse_args(cmd).command == name


def test_topics_service_is_a_one_shot_topics_create(compose: dict[str, Any]) -> None:
    cmd = command(compose, "topics")
    args = build_parser().parse_args(cmd)
    assert (args.command, args.action) == ("topics", "create")
    topics = service(compose, "topics")
    assert topics.get("restart", "no") == "no"
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", sorted(IMAGE_SERVICES))
def test_image_services_build_the_dockerfile(compose: dict[str, Any], name: str) -> None:
    svc = service(compose, name)
    build = svc.get("build")
    assert isinstance(build, dict), f"`{name}` does not build the app image"
    assert (ROOT / build.get("context", ".") / build["dockerfile"]).resolve() == DOCKERFILE
    assert "entrypoint" not in svc, "the image's ENTRYPOINT (switchboard) must be kept"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_services_wait_for_their_dependencies(compose: dict[str, Any], name: str) -> None:
    svc = service(compose, name)
    depends = svc.get("depends_on")
    assert isinstance(depends, dict)
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["topics"]["condition"] == "service_completed_successfully"
    assert svc.get("restart") == "unless-stopped"


@pytest.mark.parametrize("name", ["brain", "egress"])
def test_workers_can_scale(compose: dict[str, Any], name: str) -> None:
    svc = service(compose, name)
    assert "container_name" not in svc
    assert not svc.get("ports"), "a fixed host port stops `--scale` at one instance"


# --- compose: environment against the settings classes ---------------------------------------


def test_setting_names_are_collected_from_the_classes() -> None:
    # Guards the helper itself: shared names are plain, service names carry the prefix.
    assert {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "SWITCHBOARD_ENV"} <= env_names(
        BaseServiceSettings
    )
    assert {"INGRESS_HOST", "INGRESS_CHAT_TOKEN_SECRET", "REDIS_URL"} <= env_names(IngressSettings)
    assert {"BRAIN_ENGINE", "OPENAI_API_KEY", "OPENAI_MODEL"} <= env_names(BrainSettings)
    assert "BRAIN_OPENAI_API_KEY" not in env_names(BrainSettings)
    assert "EGRESS_PORT" in env_names(EgressSettings)


@pytest.mark.parametrize("name", sorted(IMAGE_SERVICES))
def test_every_variable_compose_sets_is_read_by_the_code(
    compose: dict[str, Any], name: str
) -> None:
    known = env_names(IMAGE_SERVICES[name])
    if name in APP_SERVICES:
        known |= set().union(*(env_names(cls) for cls in CHANNEL_SETTINGS))
    unknown = set(environment(compose, name)) - known
    assert not unknown, f"`{name}` sets variables no setting reads: {sorted(unknown)}"


def test_services_share_one_environment_anchor(compose: dict[str, Any]) -> None:
    shared = compose.get("x-switchboard-env")
    assert isinstance(shared, dict)
    assert shared["LOG_FORMAT"] == "json"
    assert {"SWITCHBOARD_ENV", "SWITCHBOARD_TOPIC_NAMESPACE", "LOG_LEVEL"} <= set(shared)
    assert interpolate(shared["SWITCHBOARD_ENV"]) == "development"
    for name in IMAGE_SERVICES:
        env = environment(compose, name)
        assert {key: env.get(key) for key in shared} == shared, f"`{name}` overrides the anchor"


@pytest.mark.parametrize("name", sorted(IMAGE_SERVICES))
def test_infrastructure_points_at_the_compose_services(compose: dict[str, Any], name: str) -> None:
    env = environment(compose, name)
    assert env.get("KAFKA_BOOTSTRAP_SERVERS") == "kafka:9092"
    assert env.get("REDIS_URL") == "redis://redis:6379/0"
    advertised = environment(compose, "kafka")["KAFKA_ADVERTISED_LISTENERS"]
    assert f"PLAINTEXT://{env['KAFKA_BOOTSTRAP_SERVERS']}" in str(advertised).split(",")


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_services_bind_all_interfaces(
    monkeypatch: pytest.MonkeyPatch, compose: dict[str, Any], name: str
) -> None:
    assert environment(compose, name).get(f"{name.upper()}_HOST") == "0.0.0.0"
    settings = settings_from_compose(monkeypatch, compose, name)
    assert settings.host == "0.0.0.0"  # type: ignore[attr-defined]
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.environment == "development"
    assert settings.log_format == "json"


def test_ingress_publishes_its_port(
    monkeypatch: pytest.MonkeyPatch, compose: dict[str, Any]
) -> None:
    settings = settings_from_compose(monkeypatch, compose, "ingress")
    assert isinstance(settings, IngressSettings)
    assert settings.port == IngressSettings.model_fields["port"].default == 8000
    assert (settings.port, settings.port) in published_ports(compose, "ingress")


def test_ingress_in_production_refuses_the_compose_default_secret(
    monkeypatch: pytest.MonkeyPatch, compose: dict[str, Any]
) -> None:
    assert "INGRESS_CHAT_TOKEN_SECRET" in environment(compose, "ingress")
    with pytest.raises(ValidationError, match="INGRESS_CHAT_TOKEN_SECRET"):
        settings_from_compose(monkeypatch, compose, "ingress", {"SWITCHBOARD_ENV": "production"})
    ok = settings_from_compose(
        monkeypatch,
        compose,
        "ingress",
        {
            "SWITCHBOARD_ENV": "production",
            "INGRESS_CHAT_TOKEN_SECRET": "x" * 32,
            "TWILIO_AUTH_TOKEN": "y" * 32,
            "VOIPBIN_ACCESS_KEY": "k" * 32,
            "VOIPBIN_WEBHOOK_SECRET": "s" * 32,
            "VOIPBIN_FETCH_TOKEN": "t" * 32,
        },
    )
    assert ok.environment == "production"


def test_brain_without_a_key_on_the_host_runs_offline(
    monkeypatch: pytest.MonkeyPatch, compose: dict[str, Any]
) -> None:
    from services.brain.engines import build_engine
    from services.brain.engines.offline import OfflineEngine

    env = environment(compose, "brain")
    assert {"OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"} <= set(env)
    settings = settings_from_compose(monkeypatch, compose, "brain")
    assert isinstance(settings, BrainSettings)
    assert settings.engine == "auto"
    assert settings.openai_api_key is None, "an empty OPENAI_API_KEY must count as unset"
    assert settings.openai_base_url is None, "an empty OPENAI_BASE_URL must count as unset"
    assert settings.openai_model == BrainSettings.model_fields["openai_model"].default
    assert isinstance(build_engine(settings), OfflineEngine)


def test_vapi_tools_in_ingress_default_to_the_vapi_fake(compose: dict[str, Any]) -> None:
    env = environment(compose, "ingress")
    assert interpolate(env["VAPI_API_BASE"]) == "http://vapi-fake:8030"
    assert interpolate(env["VAPI_API_KEY"]) == "", "no key: the tools use the fake's"
    cmd = command(compose, "vapi-fake")
    assert build_parser().parse_known_args(cmd)[0].provider == "vapi"
    assert cmd[cmd.index("--port") + 1] == "8030"
    assert cmd[cmd.index("--public-url") + 1] == "http://vapi-fake:8030"
    assert (8030, 8030) in published_ports(compose, "vapi-fake")


# --- compose: health checks and infrastructure -----------------------------------------------


def test_services_serve_readyz() -> None:
    paths = {route.path for route in health_router("svc", {}).routes}  # type: ignore[attr-defined]
    assert "/readyz" in paths


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_healthcheck_hits_readyz_on_its_own_port(
    monkeypatch: pytest.MonkeyPatch, compose: dict[str, Any], name: str
) -> None:
    port = settings_from_compose(monkeypatch, compose, name).port  # type: ignore[attr-defined]
    assert port == APP_SERVICES[name].model_fields["port"].default
    test = service(compose, name)["healthcheck"]["test"]
    assert isinstance(test, list) and test[:3] == ["CMD", "python", "-c"], test
    assert f"http://127.0.0.1:{port}/readyz" in test[3]
    # The probe must be valid Python (it runs with `python -c`).
    compile(test[3], f"<{name} healthcheck>", "exec")


def test_kafka_is_a_single_kraft_node(compose: dict[str, Any]) -> None:
    kafka = service(compose, "kafka")
    assert str(kafka["image"]).startswith("apache/kafka:")
    env = {key: str(value) for key, value in environment(compose, "kafka").items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    listeners = dict(item.split("://", 1) for item in env["KAFKA_LISTENERS"].split(","))
    assert listeners == {"PLAINTEXT": ":9092", "CONTROLLER": ":9093"}
    protocols = dict(
        item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(listeners) <= set(protocols)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert "kafka-topics.sh" in " ".join(kafka["healthcheck"]["test"])


def test_redis_persists_and_has_a_healthcheck(compose: dict[str, Any]) -> None:
    redis = service(compose, "redis")
    assert str(redis["image"]).startswith("redis:7")
    assert "--appendonly" in redis["command"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


# --- Dockerfile and .dockerignore ------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    assert DOCKERFILE.is_file(), "deploy/docker/Dockerfile is missing"
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), " ".join(rest.split())))
    return instructions


def test_dockerfile_installs_pinned_requirements_then_the_project() -> None:
    instructions = dockerfile_instructions()
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms and all(args.startswith("python:3.11-slim") for args in froms)
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    requirements = next(i for i, run in enumerate(runs) if "-r requirements.txt" in run)
    project = next(i for i, run in enumerate(runs) if "pip install --no-deps ." in run)
    assert requirements < project
    assert not any(re.search(r"pip install[^&]* (-e|--editable)\b", run) for run in runs)


def test_dockerfile_runs_switchboard_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    entrypoints = [args for keyword, args in instructions if keyword == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["switchboard"]


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    assert DOCKERIGNORE.is_file()
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore should be an allowlist"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    for keyword, args in dockerfile_instructions():
        if keyword != "COPY" or "--from=" in args:
            continue
        sources = [part for part in args.split()[:-1] if not part.startswith("--")]
        for source in sources:
            assert source.rstrip("/") in allowed, f"COPY {source} is excluded by .dockerignore"
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
