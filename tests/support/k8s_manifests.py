"""Reading rendered Kubernetes manifests: find objects, resolve a container's environment,
compare quantities. Used by tests/unit/test_kubernetes.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.kustomize import build

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("local", "production")
SECRET_NAME = "switchboard-secrets"
SECRET_TEMPLATE = K8S_DIR / "overlays" / "production" / "secret.template.yaml"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")

Resource = dict[str, Any]


@dataclass
class Rendered:
    """One overlay as `kubectl kustomize` prints it, plus the Secret its pods read."""

    overlay: str
    resources: list[Resource]
    secret: Resource | None
    """Rendered by the overlay, or (production) the template the operator fills."""

    def of_kind(self, kind: str) -> list[Resource]:
        return [r for r in self.resources if r.get("kind") == kind]

    def get(self, kind: str, name: str) -> Resource | None:
        return next((r for r in self.of_kind(kind) if r["metadata"]["name"] == name), None)

    def workloads(self) -> list[Resource]:
        return [r for r in self.resources if r.get("kind") in WORKLOAD_KINDS]

    def config_map(self, name: str) -> dict[str, str]:
        found = self.get("ConfigMap", name)
        return dict((found or {}).get("data") or {})


def render(overlay: str, k8s_dir: Path = K8S_DIR) -> Rendered:
    """Render an overlay of `k8s_dir` (the repository's, or a broken copy of it)."""
    resources = build(k8s_dir / "overlays" / overlay)
    secret = next(
        (r for r in resources if r.get("kind") == "Secret" and name_of(r) == SECRET_NAME), None
    )
    if secret is None:
        template = k8s_dir / "overlays" / "production" / "secret.template.yaml"
        secret = yaml.safe_load(template.read_text(encoding="utf-8"))
    return Rendered(overlay, resources, secret)


def name_of(resource: Resource) -> str:
    return str((resource.get("metadata") or {}).get("name", ""))


def pod_spec(workload: Resource) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def pod_labels(workload: Resource) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"].get("labels") or {})


def containers(workload: Resource) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only, or a plain Service selector) matches."""
    if "matchExpressions" in selector:
        raise AssertionError("matchExpressions are not used in these manifests")
    match = selector.get("matchLabels", selector)
    return bool(match) and all(labels.get(key) == value for key, value in match.items())


@dataclass(frozen=True)
class EnvValue:
    """Where a container's variable comes from: a literal, a ConfigMap, a Secret, the pod."""

    source: str  # "value" | "configmap" | "secret" | "field"
    value: str
    """The literal or ConfigMap value, the Secret key, or the field path."""


def container_env(rendered: Rendered, container: dict[str, Any]) -> dict[str, EnvValue]:
    """Every variable a container gets, with Kubernetes' precedence (`env` over `envFrom`).

    A reference to a ConfigMap or Secret the overlay does not provide raises AssertionError.
    """
    env: dict[str, EnvValue] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            ref = source["configMapRef"]["name"]
            assert rendered.get("ConfigMap", ref), f"envFrom names a missing ConfigMap {ref}"
            for key, value in rendered.config_map(ref).items():
                env[source.get("prefix", "") + key] = EnvValue("configmap", str(value))
        else:
            raise AssertionError(f"unexpected envFrom source {source}: secrets go key by key")
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = EnvValue("value", str(item["value"]))
            continue
        ref = item["valueFrom"]
        if "secretKeyRef" in ref:
            assert ref["secretKeyRef"]["name"] == SECRET_NAME, f"{name}: unknown Secret"
            env[name] = EnvValue("secret", ref["secretKeyRef"]["key"])
        elif "configMapKeyRef" in ref:
            data = rendered.config_map(ref["configMapKeyRef"]["name"])
            env[name] = EnvValue("configmap", str(data[ref["configMapKeyRef"]["key"]]))
        elif "fieldRef" in ref:
            env[name] = EnvValue("field", ref["fieldRef"]["fieldPath"])
        else:
            raise AssertionError(f"{name}: unsupported valueFrom {ref}")
    return env


def secret_data(secret: Resource) -> dict[str, str]:
    """A Secret's values as strings (`stringData`; base64 `data` is not used here)."""
    assert "data" not in secret, "write secrets as stringData"
    return {key: str(value) for key, value in (secret.get("stringData") or {}).items()}


def process_env(
    rendered: Rendered,
    container: dict[str, Any],
    pod_name: str,
    secrets: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment the container's process sees, with `secrets` (default: the overlay's
    Secret or template) for the Secret's keys and `pod_name` for `metadata.name`."""
    assert rendered.secret is not None
    values = secrets if secrets is not None else secret_data(rendered.secret)
    resolved: dict[str, str] = {}
    for name, env in container_env(rendered, container).items():
        if env.source == "secret":
            assert env.value in values, f"{name}: the Secret has no key {env.value}"
            resolved[name] = values[env.value]
        elif env.source == "field":
            assert env.value == "metadata.name", f"{name}: unsupported field {env.value}"
            resolved[name] = pod_name
        else:
            resolved[name] = env.value
    return resolved


_QUANTITY = re.compile(r"^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_FACTORS = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity ("250m", "1", "512Mi") as a number."""
    match = _QUANTITY.match(str(value))
    assert match, f"not a quantity: {value!r}"
    return float(match.group(1)) * _FACTORS[match.group(2)]
