"""`kubectl kustomize` for the subset deploy/kubernetes/ uses, so tests can check the objects an
operator's `kubectl apply -k overlays/<name>` would send, without kubectl.

Supported, with kustomize's meaning: `resources` (files and directories holding a
kustomization), `namespace`, `patches` (one strategic merge patch per file, matched by kind and
name or by a `target`), `images` (`newName`, `newTag`). Anything else in a kustomization is
refused (`KustomizeError`) rather than ignored, so a manifest change this renderer does not
understand fails the tests instead of being validated wrongly.

Strategic merge follows Kubernetes' patch strategies for the lists the manifests patch: in
built-in kinds `containers`, `initContainers`, `env`, `volumes` merge by `name` and
`volumeMounts` by `mountPath`; every other list is replaced. Custom resources have no patch
strategies (kustomize replaces their lists too). Deletion directives (`$patch`) are refused.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILE = "kustomization.yaml"
SUPPORTED_FIELDS = frozenset({"apiVersion", "kind", "resources", "namespace", "patches", "images"})
CLUSTER_SCOPED_KINDS = frozenset({"Namespace"})
BUILT_IN_GROUPS = frozenset({"", "apps", "batch", "policy", "autoscaling"})
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
}

Resource = dict[str, Any]


class KustomizeError(Exception):
    """The kustomization uses something this renderer does not implement, or is wrong."""


def load_documents(path: Path) -> list[Resource]:
    """Every non-empty YAML document of a file."""
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    for doc in docs:
        if not isinstance(doc, dict):
            raise KustomizeError(f"{path}: a document is not a mapping")
    return docs


def build(directory: Path) -> list[Resource]:
    """The objects `kubectl kustomize <directory>` prints, in resource order."""
    path = directory / KUSTOMIZATION_FILE
    if not path.is_file():
        raise KustomizeError(f"{directory} has no {KUSTOMIZATION_FILE}")
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{path}: unsupported kustomization fields {sorted(unknown)}")
    if spec.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(f"{path}: kind must be Kustomization")

    resources: list[Resource] = []
    for entry in spec.get("resources") or []:
        target = (directory / entry).resolve()
        resources.extend(build(target) if target.is_dir() else load_documents(target))
    _check_unique(resources, path)

    for patch_entry in spec.get("patches") or []:
        _apply_patch_entry(resources, directory, patch_entry, path)
    if "namespace" in spec:
        _set_namespace(resources, spec["namespace"])
    for image in spec.get("images") or []:
        _set_image(resources, image, path)
    return resources


def resource_id(resource: Resource) -> tuple[str, str, str]:
    """(kind, namespace, name): what must be unique in one build."""
    meta = resource.get("metadata") or {}
    return (resource.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))


def _check_unique(resources: list[Resource], where: Path) -> None:
    seen: set[tuple[str, str, str]] = set()
    for resource in resources:
        rid = resource_id(resource)
        if rid in seen:
            raise KustomizeError(f"{where}: {rid} is defined twice")
        seen.add(rid)


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def _apply_patch_entry(
    resources: list[Resource], directory: Path, entry: dict[str, Any], where: Path
) -> None:
    unknown = set(entry) - {"path", "target"}
    if unknown or "path" not in entry:
        raise KustomizeError(f"{where}: patches support `path` and `target` only, got {entry}")
    patches = load_documents(directory / entry["path"])
    if len(patches) != 1:
        # kustomize's `patches` reads one patch per file (kubernetes-sigs/kustomize#3929).
        raise KustomizeError(f"{where}: {entry['path']} must hold exactly one patch")
    for patch in patches:
        target = entry.get("target") or {
            "group": _group(str(patch.get("apiVersion", ""))),
            "kind": patch.get("kind"),
            "name": (patch.get("metadata") or {}).get("name"),
        }
        matches = [r for r in resources if _matches(r, target)]
        if not matches:
            raise KustomizeError(f"{where}: patch {entry['path']} matches no resource {target}")
        for resource in matches:
            strategic = _group(resource.get("apiVersion", "")) in BUILT_IN_GROUPS
            body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
            body["metadata"] = {
                k: v for k, v in (patch.get("metadata") or {}).items() if k not in ("name",)
            }
            merged = _merge(resource, body, strategic)
            resource.clear()
            resource.update(merged)


def _matches(resource: Resource, target: dict[str, Any]) -> bool:
    unknown = set(target) - {"kind", "name", "group", "version", "labelSelector"}
    if unknown:
        raise KustomizeError(f"unsupported patch target fields {sorted(unknown)}")
    meta = resource.get("metadata") or {}
    api_version = resource.get("apiVersion", "")
    if "kind" in target and target["kind"] != resource.get("kind"):
        return False
    if "name" in target and target["name"] != meta.get("name"):
        return False
    if "group" in target and target["group"] != _group(api_version):
        return False
    if "version" in target and target["version"] != api_version.split("/")[-1]:
        return False
    if "labelSelector" in target:
        labels = meta.get("labels") or {}
        for term in str(target["labelSelector"]).split(","):
            key, _, value = term.partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
    return True


def _merge(base: Any, patch: Any, strategic: bool, key: str = "") -> Any:
    if isinstance(patch, dict):
        if "$patch" in patch or any(str(k).startswith("$") for k in patch):
            raise KustomizeError("patch directives ($patch, $setElementOrder, ...) unsupported")
        if not isinstance(base, dict):
            return copy.deepcopy(patch)
        merged = copy.deepcopy(base)
        for name, value in patch.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = _merge(base.get(name), value, strategic, name)
        return merged
    if isinstance(patch, list) and strategic and key in MERGE_KEYS and isinstance(base, list):
        merge_key = MERGE_KEYS[key]
        merged_list = copy.deepcopy(base)
        for item in patch:
            position = next(
                (i for i, old in enumerate(merged_list) if old.get(merge_key) == item[merge_key]),
                None,
            )
            if position is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[position] = _merge(merged_list[position], item, strategic)
        return merged_list
    return copy.deepcopy(patch)


def _set_namespace(resources: list[Resource], namespace: str) -> None:
    for resource in resources:
        meta = resource.setdefault("metadata", {})
        if resource.get("kind") in CLUSTER_SCOPED_KINDS:
            if resource.get("kind") == "Namespace":
                meta["name"] = namespace
            continue
        meta["namespace"] = namespace


def _pod_specs(resource: Resource) -> list[dict[str, Any]]:
    spec = resource.get("spec") or {}
    template = (spec.get("template") or {}).get("spec")
    if resource.get("kind") == "Pod":
        return [spec]
    if resource.get("kind") == "CronJob":
        template = spec["jobTemplate"]["spec"]["template"]["spec"]
    return [template] if isinstance(template, dict) else []


def _set_image(resources: list[Resource], image: dict[str, Any], where: Path) -> None:
    unknown = set(image) - {"name", "newName", "newTag"}
    if unknown or "name" not in image:
        raise KustomizeError(f"{where}: images support name, newName, newTag only: {image}")
    for resource in resources:
        for pod in _pod_specs(resource):
            for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
                name, tag = _split_image(container["image"])
                if name != image["name"]:
                    continue
                name = image.get("newName", name)
                tag = image.get("newTag", tag)
                container["image"] = f"{name}:{tag}" if tag else name


def _split_image(reference: str) -> tuple[str, str]:
    # The tag follows the last colon after the last slash (a registry port is not a tag).
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, ""
