"""deploy/kubernetes/ renders to valid objects that agree with the code, offline.

Each overlay is rendered as `kubectl apply -k` would (tests/support/kustomize.py), every object
is checked against the Kubernetes schemas and the vendored KEDA and Strimzi CRD schemas
(tests/support/k8s_schemas.py), and then against the rules in tests/support/k8s_rules.py:
every setting the code reads is set, probes hit the real health routes, shutdown fits in the
grace period, KEDA scales on the real consumer groups up to the partition count, PDBs and
Services select the pods they mean. A broken copy of the manifests shows each check can fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from services.brain.config import BrainSettings
from tests.support import k8s_rules as rules
from tests.support.k8s_manifests import (
    K8S_DIR,
    OVERLAYS,
    SECRET_TEMPLATE,
    Rendered,
    name_of,
    process_env,
    render,
    secret_data,
)
from tests.support.k8s_schemas import SCHEMA_DIR
from tests.support.kustomize import KustomizeError, build

pytestmark = pytest.mark.unit

Rule = Callable[[Rendered], list[str]]
RULES: dict[str, Rule] = {
    "schema": rules.schema_problems,
    "namespace": rules.namespace_problems,
    "env": rules.env_problems,
    "probes": rules.probe_problems,
    "shutdown": rules.shutdown_problems,
    "static-membership": rules.static_membership_problems,
    "topics": rules.topic_problems,
    "scaling": rules.scaling_problems,
    "disruption": rules.disruption_problems,
    "resources": rules.resource_problems,
    "fakes": rules.fake_problems,
}

# Base ConfigMap values that differ from the code's defaults on purpose (each says why in
# deploy/kubernetes/base/config.yaml).
DELIBERATE = {
    "SWITCHBOARD_ENV",
    "KAFKA_BOOTSTRAP_SERVERS",
    "REDIS_URL",
    "KAFKA_REPLICATION_FACTOR",
    "KAFKA_MIN_INSYNC_REPLICAS",
    "KAFKA_SESSION_TIMEOUT_MS",
    "LOG_FORMAT",
    "INGRESS_HOST",
    "BRAIN_HOST",
    "EGRESS_HOST",
    "PUBLIC_BASE_URL",
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, Rendered]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_keeps_the_rule(rendered: dict[str, Rendered], overlay: str, rule: str) -> None:
    assert RULES[rule](rendered[overlay]) == []


def test_base_config_differs_from_the_code_defaults_only_on_purpose() -> None:
    base = build(K8S_DIR / "base")
    config = next(r for r in base if r["kind"] == "ConfigMap")["data"]
    assert rules.config_drift_problems(config, DELIBERATE) == []
    assert set(config) >= DELIBERATE, "a deliberate override names no ConfigMap key"


# --- the settings the services build from the manifests --------------------------------------


def settings_env(
    monkeypatch: pytest.MonkeyPatch,
    rendered: Rendered,
    service: str,
    secrets: dict[str, str] | None = None,
) -> dict[str, str]:
    """Put exactly the process environment of `service`'s first pod in place."""
    for other in rules.SERVICES:
        for name in rules.known_names(other):
            monkeypatch.delenv(name, raising=False)
    workload = rules.service_workload(rendered, service)
    pod_name = f"{name_of(workload)}-0"
    env = process_env(rendered, rules.service_container(rendered, service), pod_name, secrets)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.mark.parametrize("service", sorted(rules.SERVICES))
def test_local_services_start_in_development_against_the_fakes(
    monkeypatch: pytest.MonkeyPatch, rendered: dict[str, Rendered], service: str
) -> None:
    local = rendered["local"]
    settings_env(monkeypatch, local, service)
    main, *channel_settings = (cls() for cls in rules.SERVICES[service])
    assert main.environment == "development"  # type: ignore[attr-defined]
    assert main.host == "0.0.0.0"  # type: ignore[attr-defined]
    assert main.kafka_bootstrap_servers == rules.bootstrap_address(local)  # type: ignore[attr-defined]
    member = main.kafka_group_instance_id  # type: ignore[attr-defined]
    assert member == (f"switchboard-{service}-0" if service in rules.CONSUMERS else None)
    assert channel_settings or service == "brain"
    if isinstance(main, BrainSettings):
        from services.brain.engines import build_engine

        assert build_engine(main).name != "offline", "local runs use the fake model"
        assert main.openai_base_url == local.config_map("switchboard-config")["OPENAI_BASE_URL"]


@pytest.mark.parametrize("service", ["ingress", "egress"])
def test_production_refuses_the_secret_template_as_it_is(
    monkeypatch: pytest.MonkeyPatch, rendered: dict[str, Rendered], service: str
) -> None:
    settings_env(monkeypatch, rendered["production"], service)
    with pytest.raises(ValidationError, match="must be set"):
        for cls in rules.SERVICES[service]:
            cls()


@pytest.mark.parametrize("service", sorted(rules.SERVICES))
def test_production_starts_once_the_secrets_are_filled_in(
    monkeypatch: pytest.MonkeyPatch, rendered: dict[str, Rendered], service: str
) -> None:
    filled = {name: f"{name.lower()}-{'x' * 40}" for name in rules.all_secret_names()}
    env = settings_env(monkeypatch, rendered["production"], service, filled)
    settings = [cls() for cls in rules.SERVICES[service]]
    assert all(getattr(s, "environment", "production") == "production" for s in settings)
    assert env["SWITCHBOARD_ENV"] == "production"


def test_secret_template_holds_placeholders_only() -> None:
    template = yaml.safe_load(SECRET_TEMPLATE.read_text(encoding="utf-8"))
    values = secret_data(template)
    assert set(values) == rules.all_secret_names()
    assert set(values.values()) == {""}, "the template must never hold a secret"
    text = SECRET_TEMPLATE.read_text(encoding="utf-8")
    assert "TEMPLATE ONLY" in text
    for name in rules.secret_names("ingress") - {"VAPI_API_KEY", "VAPI_PUBLIC_KEY"}:
        assert re.search(rf"^  {name}: \"\"  # CHANGE-ME", text, re.M), f"{name} is not marked"
    for path in K8S_DIR.rglob("kustomization.yaml"):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        listed = [*spec.get("resources", []), *(p["path"] for p in spec.get("patches", []))]
        assert SECRET_TEMPLATE.name not in {Path(entry).name for entry in listed}, path


# --- the validators themselves ---------------------------------------------------------------


def test_vendored_schemas_name_their_source() -> None:
    readme = (SCHEMA_DIR / "README.md").read_text(encoding="utf-8")
    files = sorted(p.name for p in SCHEMA_DIR.glob("*.json"))
    assert len(files) == 4
    for name in files:
        assert name in readme, f"{name} is not described in schemas/README.md"
        crd = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
        assert {"group", "kind", "version", "openAPIV3Schema"} <= set(crd)
    assert re.search(r"kedacore/keda.*v2\.20\.2", readme)
    assert re.search(r"strimzi/strimzi-kafka-operator.*1\.2\.0", readme)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_renderer_agrees_with_kustomize_where_installed(overlay: str) -> None:
    # The renderer stands in for kustomize where neither tool is installed; where one is
    # (kubectl 1.32 embeds kustomize v5.5.0), both must print the same objects.
    if shutil.which("kustomize"):
        command = ["kustomize", "build"]
    elif shutil.which("kubectl"):
        command = ["kubectl", "kustomize"]
    else:
        pytest.skip("neither kustomize nor kubectl is installed")
    out = subprocess.run(
        [*command, str(K8S_DIR / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    real = [doc for doc in yaml.safe_load_all(out) if doc]
    mine = build(K8S_DIR / "overlays" / overlay)
    canonical = {json.dumps(doc, sort_keys=True) for doc in real}
    assert canonical == {json.dumps(doc, sort_keys=True) for doc in mine}
    assert len(real) == len(mine)


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "resources: []\nconfigMapGenerator:\n  - name: x\n", encoding="utf-8"
    )
    with pytest.raises(KustomizeError, match="configMapGenerator"):
        build(tmp_path)
    (tmp_path / "patch.yaml").write_text("kind: A\n---\nkind: B\n", encoding="utf-8")
    (tmp_path / "kustomization.yaml").write_text(
        "resources: []\npatches:\n  - path: patch.yaml\n", encoding="utf-8"
    )
    with pytest.raises(KustomizeError, match="exactly one patch"):
        build(tmp_path)


# (overlay, file under deploy/kubernetes/, text, replacement, rule, what the rule reports)
BREAKAGES = [
    (
        "production",
        "base/brain.yaml",
        "pollingInterval: 15",
        "pollingIntervall: 15",
        "schema",
        "'pollingIntervall' was unexpected",
    ),
    (
        "production",
        "base/ingress.yaml",
        "containerPort: 8000",
        'containerPort: "8000"',
        "schema",
        "is not of type 'integer'",
    ),
    (
        "production",
        "base/kafka-topics.yaml",
        "partitions: 6",
        "partitions: six",
        "schema",
        "'six' is not of type 'integer'",
    ),
    (
        "production",
        "base/kafka.yaml",
        "  replicas: 3\n  roles:",
        "  replica: 3\n  roles:",
        "schema",
        "'replicas' is a required property",
    ),
    (
        "local",
        "base/config.yaml",
        '  BRAIN_MAX_ATTEMPTS: "5"\n',
        "",
        "env",
        "brain: BRAIN_MAX_ATTEMPTS is not set",
    ),
    (
        "production",
        "base/config.yaml",
        "\ndata:\n",
        '\ndata:\n  OPENAI_API_KEY: "sk"\n',
        "env",
        "holds the secret OPENAI_API_KEY",
    ),
    (
        "local",
        "base/config.yaml",
        "\ndata:\n",
        '\ndata:\n  BRAIN_TYPO_S: "1"\n',
        "env",
        "sets BRAIN_TYPO_S, which no service reads",
    ),
    (
        "production",
        "base/brain.yaml",
        "key: OPENAI_API_KEY}}\n",
        "key: OPENAI_API_KEY}}\n            - name: TWILIO_AUTH_TOKEN\n"
        "              valueFrom: {secretKeyRef: {name: switchboard-secrets,"
        " key: TWILIO_AUTH_TOKEN}}\n",
        "env",
        "brain: TWILIO_AUTH_TOKEN is set but brain does not read it",
    ),
    (
        "production",
        "base/egress.yaml",
        "maxReplicaCount: 6",
        "maxReplicaCount: 12",
        "scaling",
        "maxReplicaCount 12 != 6 partitions",
    ),
    (
        "production",
        "base/egress.yaml",
        "consumerGroup: switchboard.egress.sms",
        "consumerGroup: switchboard.egress.text",
        "scaling",
        "its groups are",
    ),
    (
        "production",
        "base/brain.yaml",
        "terminationGracePeriodSeconds: 30",
        "terminationGracePeriodSeconds: 15",
        "shutdown",
        "brain: terminationGracePeriodSeconds 15",
    ),
    (
        "production",
        "base/ingress.yaml",
        'command: ["sleep", "10"]',
        'command: ["true"]',
        "shutdown",
        "no preStop sleep",
    ),
    (
        "production",
        "base/brain.yaml",
        "path: /readyz",
        "path: /ready",
        "probes",
        "readinessProbe on /ready",
    ),
    (
        "production",
        "base/egress.yaml",
        "fieldPath: metadata.name",
        "fieldPath: metadata.uid",
        "static-membership",
        "egress: KAFKA_GROUP_INSTANCE_ID is not the pod name",
    ),
    (
        "production",
        "base/kafka-topics.yaml",
        "replicas: 3",
        "replicas: 1",
        "topics",
        "not replicas 3 with min.insync.replicas 2",
    ),
    (
        "production",
        "overlays/production/kustomization.yaml",
        "  - ../../base\n",
        "  - ../../base\n  - ../local/fakes.yaml\n",
        "fakes",
        "production deploys the fake",
    ),
    (
        "production",
        "base/ingress.yaml",
        'limits: {cpu: "1", memory: 512Mi}',
        'limits: {cpu: "1", memory: 128Mi}',
        "resources",
        "memory request 256Mi above its limit",
    ),
]


@pytest.mark.parametrize(
    ("overlay", "path", "text", "replacement", "rule", "reported"),
    BREAKAGES,
    ids=[f"{b[4]}:{b[1]}:{b[3][:24]}" for b in BREAKAGES],
)
def test_a_broken_copy_is_caught(
    tmp_path: Path,
    overlay: str,
    path: str,
    text: str,
    replacement: str,
    rule: str,
    reported: str,
) -> None:
    copy = tmp_path / "kubernetes"
    shutil.copytree(K8S_DIR, copy)
    target = copy / path
    original = target.read_text(encoding="utf-8")
    assert text in original, f"{path} no longer contains {text!r}: update the breakage"
    target.write_text(original.replace(text, replacement, 1), encoding="utf-8")
    problems = RULES[rule](render(overlay, copy))
    assert any(reported in problem for problem in problems), problems
