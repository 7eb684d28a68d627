"""Offline schema validation of Kubernetes objects.

Built-in kinds are checked against the Kubernetes JSON schemas the `kubernetes-validate`
package ships (strict: unknown fields are errors, as `kubectl apply` with server-side field
validation would report them). Custom resources (KEDA ScaledObject, Strimzi Kafka,
KafkaNodePool, KafkaTopic) are checked against the CRDs' openAPIV3Schema vendored in
deploy/kubernetes/schemas/ (see its README for their source), made strict the same way the API
server prunes: an object schema that lists its properties accepts no others unless it says
`x-kubernetes-preserve-unknown-fields`. Nothing is fetched at run time.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "schemas"
KUBERNETES_VERSIONS = ("1.30", "1.37")
"""The oldest Kubernetes the manifests claim to support, and the newest the package knows."""


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        strict.get("type") == "object"
        and isinstance(strict.get("properties"), dict)
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> validator, one per vendored CRD schema."""
    validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        crd = json.loads(path.read_text(encoding="utf-8"))
        api_version = f"{crd['group']}/{crd['version']}"
        schema = _strict(crd["openAPIV3Schema"])
        validators[(api_version, crd["kind"])] = jsonschema.Draft4Validator(schema)
    return validators


def problems(resource: dict[str, Any]) -> list[str]:
    """Schema violations of one object; empty when it is valid."""
    kind = resource.get("kind", "?")
    name = (resource.get("metadata") or {}).get("name", "?")
    where = f"{kind}/{name}"
    validator = crd_validators().get((resource.get("apiVersion", ""), kind))
    if validator is not None:
        found = [
            f"{where}: {'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in validator.iter_errors(resource)
        ]
        # A CRD schema says only `metadata: {type: object}`: check it as any object's metadata.
        meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": resource.get("metadata")}
        return found + [f"{where}: metadata: {p}" for p in _builtin_problems(meta)]
    return [f"{where}: {p}" for p in _builtin_problems(resource)]


def _builtin_problems(resource: dict[str, Any]) -> list[str]:
    found = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(map(str, error.path)) or "<root>"
            found.append(f"Kubernetes {version}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            found.append(f"Kubernetes {version}: no schema: {error.message}")
    return found
