"""The rules deploy/kubernetes/ must keep, each a function returning what breaks it (empty
when kept), so tests can assert both that the real manifests keep them and that a broken copy
is caught. The facts come from the code: settings classes, topic names, health routes, the
uvicorn shutdown timeout."""

from __future__ import annotations

import ast
import typing
from collections.abc import Iterator
from urllib.parse import urlsplit

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from services.brain.config import BrainSettings
from services.channels.registry import channel_names
from services.channels.vapi.settings import VapiSettings
from services.channels.voipbin.profile import VoiceProfileSettings
from services.common.http import health_router
from services.egress.config import EgressSettings
from services.ingress.config import IngressSettings
from shared.topics import Topics
from tests.support import k8s_schemas
from tests.support.k8s_manifests import (
    ROOT,
    Rendered,
    Resource,
    container_env,
    containers,
    name_of,
    pod_labels,
    pod_spec,
    quantity,
    secret_data,
    selects,
)

CONFIG_MAP = "switchboard-config"
# Each service's workload and the settings classes its process reads (the channels' own
# settings are read by whichever side builds the channel: services/channels/*/channel.py).
SERVICES: dict[str, tuple[type[BaseSettings], ...]] = {
    "ingress": (IngressSettings, VapiSettings, VoiceProfileSettings),
    "brain": (BrainSettings,),
    "egress": (EgressSettings, VapiSettings, VoiceProfileSettings),
}
CONSUMERS = ("brain", "egress")
"""Services in consumer groups: static membership, scaled on lag."""
PROVIDER_BASES = ("TWILIO_API_BASE", "VOIPBIN_API_BASE", "VAPI_API_BASE", "OPENAI_BASE_URL")
SHUTDOWN_MARGIN_S = 10
"""Room for the lifespan's closing work (producer flush, clients) after the timed parts."""
# Metadata the KEDA kafka scaler reads (kedacore/keda v2.20.2, pkg/scalers/kafka_scaler.go,
# the `keda:"name=..."` tags of kafkaMetadata that come from triggerMetadata).
KEDA_KAFKA_METADATA = frozenset(
    {
        "bootstrapServers",
        "consumerGroup",
        "topic",
        "partitionLimitation",
        "lagThreshold",
        "activationLagThreshold",
        "offsetResetPolicy",
        "allowIdleConsumers",
        "excludePersistentLag",
        "scaleToZeroOnInvalidOffset",
        "limitToPartitionsWithLag",
        "ensureEvenDistributionOfPartitions",
        "version",
        "tls",
        "unsafeSsl",
        "sasl",
        "saslTokenProvider",
        "awsRegion",
    }
)


# --- settings, from the code ---------------------------------------------------------------


def env_choices(cls: type[BaseSettings], field_name: str, field: FieldInfo) -> list[str]:
    """The variables a field reads, canonical name first."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [(str(cls.model_config.get("env_prefix", "")) + field_name).upper()]


def fields(service: str) -> Iterator[tuple[list[str], FieldInfo]]:
    """(variable names, field) of every setting a service reads."""
    for cls in SERVICES[service]:
        for field_name, field in cls.model_fields.items():
            yield env_choices(cls, field_name, field), field


def is_secret(field: FieldInfo) -> bool:
    annotation = field.annotation
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def secret_names(service: str) -> set[str]:
    return {names[0] for names, field in fields(service) if is_secret(field)}


def all_secret_names() -> set[str]:
    return set().union(*(secret_names(service) for service in SERVICES))


def known_names(service: str) -> set[str]:
    return {name for names, _ in fields(service) for name in names}


def default_as_env(field: FieldInfo) -> str:
    """A field's default as the ConfigMap writes it ("" for none or a computed one)."""
    if field.default_factory is not None:
        return ""
    default = field.get_default()
    if default is None or not isinstance(default, str | int | float | bool):
        return ""
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)


def uvicorn_graceful_shutdown_s() -> float:
    """`timeout_graceful_shutdown` of the services' uvicorn (services/cli.py)."""
    tree = ast.parse((ROOT / "services" / "cli.py").read_text(encoding="utf-8"))
    values = [
        keyword.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "timeout_graceful_shutdown" and isinstance(keyword.value, ast.Constant)
    ]
    assert len(values) == 1, "expected one timeout_graceful_shutdown in services/cli.py"
    return float(values[0])


# --- rules --------------------------------------------------------------------------------


def service_workload(rendered: Rendered, service: str) -> Resource:
    found = [
        w
        for w in rendered.workloads()
        if any(c.get("args", [None])[0] == service for c in containers(w))
    ]
    assert len(found) == 1, f"{rendered.overlay}: expected one workload running `{service}`"
    return found[0]


def service_container(rendered: Rendered, service: str) -> dict[str, typing.Any]:
    workload = service_workload(rendered, service)
    return next(c for c in containers(workload) if c["args"][0] == service)


def schema_problems(rendered: Rendered) -> list[str]:
    found = [p for resource in rendered.resources for p in k8s_schemas.problems(resource)]
    if rendered.secret is not None:
        found += k8s_schemas.problems(rendered.secret)
    return found


def namespace_problems(rendered: Rendered) -> list[str]:
    namespaces = [name_of(r) for r in rendered.of_kind("Namespace")]
    if len(namespaces) != 1:
        return [f"expected one Namespace, found {namespaces}"]
    return [
        f"{r['kind']}/{name_of(r)} is in namespace {r['metadata'].get('namespace')!r}"
        for r in rendered.resources
        if r["kind"] != "Namespace" and r["metadata"].get("namespace") != namespaces[0]
    ]


def env_problems(rendered: Rendered) -> list[str]:
    """Every setting each service reads is set; nothing it is given is unknown; secrets come
    from the Secret, only to the services that read them, and never from the ConfigMap."""
    found: list[str] = []
    config = rendered.config_map(CONFIG_MAP)
    for name in sorted(all_secret_names() & set(config)):
        found.append(f"ConfigMap {CONFIG_MAP} holds the secret {name}")
    read_anywhere = set().union(*(known_names(service) for service in SERVICES))
    for key in sorted(set(config) - read_anywhere):
        found.append(f"ConfigMap {CONFIG_MAP} sets {key}, which no service reads")
    for service in SERVICES:
        env = container_env(rendered, service_container(rendered, service))
        for names, field in fields(service):
            if not any(name in env for name in names):
                found.append(f"{service}: {names[0]} is not set")
            elif is_secret(field) and env[names[0]].source != "secret":
                found.append(f"{service}: secret {names[0]} does not come from the Secret")
        # The shared ConfigMap reaches every service (checked above as a whole); what a
        # service is given one by one must be something it reads.
        explicit = {item["name"] for item in service_container(rendered, service).get("env", [])}
        for name in sorted(explicit - known_names(service)):
            found.append(f"{service}: {name} is set but {service} does not read it")
        # Least privilege: the secrets it reads, no other service's. (A setting that is not a
        # secret field may come from the Secret too, e.g. a REDIS_URL carrying a password.)
        given = {n for n, v in env.items() if v.source == "secret"} & all_secret_names()
        if given != secret_names(service):
            found.append(
                f"{service}: gets secrets {sorted(given)}, reads {sorted(secret_names(service))}"
            )
    if rendered.secret is not None:
        missing = all_secret_names() - set(secret_data(rendered.secret))
        if missing:
            found.append(f"the Secret lacks {sorted(missing)}")
    return found


def config_drift_problems(config: dict[str, str], deliberate: set[str]) -> list[str]:
    """Base ConfigMap values that differ from the code's defaults without being `deliberate`."""
    found = []
    for service in SERVICES:
        for names, field in fields(service):
            name = names[0]
            if name not in config or name in deliberate:
                continue
            if config[name] != default_as_env(field):
                found.append(
                    f"{name}={config[name]!r}, the code's default is {default_as_env(field)!r}"
                )
    return sorted(set(found))


def probe_problems(rendered: Rendered) -> list[str]:
    routes = {route.path for route in health_router("svc", {}).routes}  # type: ignore[attr-defined]
    expected = {"readinessProbe": "/readyz", "livenessProbe": "/livez", "startupProbe": "/healthz"}
    config = rendered.config_map(CONFIG_MAP)
    found = []
    for service in SERVICES:
        container = service_container(rendered, service)
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        settings_port = int(config[f"{service.upper()}_PORT"])
        if settings_port not in ports.values():
            found.append(f"{service}: listens on {settings_port}, container ports {ports}")
        for probe, path in expected.items():
            get = (container.get(probe) or {}).get("httpGet")
            if not get:
                found.append(f"{service}: no HTTP {probe}")
                continue
            port = ports.get(get["port"], get["port"])
            if get["path"] != path or get["path"] not in routes:
                found.append(f"{service}: {probe} on {get['path']}, expected {path}")
            if port != settings_port:
                found.append(
                    f"{service}: {probe} on port {port}, the service is on {settings_port}"
                )
    for workload in rendered.workloads():
        for container in containers(workload):
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    found.append(f"{name_of(workload)}/{container['name']}: no {probe}")
    return found


def prestop_sleep_s(container: dict[str, typing.Any]) -> float:
    hook = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = (hook.get("exec") or {}).get("command") or []
    return float(command[1]) if command[:1] == ["sleep"] else 0.0


def shutdown_problems(rendered: Rendered) -> list[str]:
    """terminationGracePeriodSeconds covers preStop + uvicorn's shutdown + the brain's drain."""
    config = rendered.config_map(CONFIG_MAP)
    uvicorn_s = uvicorn_graceful_shutdown_s()
    found = []
    for service in SERVICES:
        workload = service_workload(rendered, service)
        container = service_container(rendered, service)
        drain_s = float(config["BRAIN_DRAIN_TIMEOUT_S"]) if service == "brain" else 0.0
        needed = prestop_sleep_s(container) + uvicorn_s + drain_s + SHUTDOWN_MARGIN_S
        grace = pod_spec(workload).get("terminationGracePeriodSeconds", 30)
        if not grace > needed:
            found.append(f"{service}: terminationGracePeriodSeconds {grace} <= {needed}")
    if prestop_sleep_s(service_container(rendered, "ingress")) <= 0:
        found.append("ingress: no preStop sleep (traffic would reach a stopping pod)")
    return found


def static_membership_problems(rendered: Rendered) -> list[str]:
    found = []
    if "KAFKA_GROUP_INSTANCE_ID" in rendered.config_map(CONFIG_MAP):
        found.append("KAFKA_GROUP_INSTANCE_ID is in the ConfigMap: every pod would share it")
    for service in CONSUMERS:
        workload = service_workload(rendered, service)
        if workload["kind"] != "StatefulSet":
            found.append(f"{service}: a {workload['kind']}: pod names are not stable")
        env = container_env(rendered, service_container(rendered, service))
        member = env.get("KAFKA_GROUP_INSTANCE_ID")
        if member is None or (member.source, member.value) != ("field", "metadata.name"):
            found.append(f"{service}: KAFKA_GROUP_INSTANCE_ID is not the pod name ({member})")
    return found


def topic_problems(rendered: Rendered) -> list[str]:
    """KafkaTopics are every topic of the deployment, on the Kafka, replicated as promised."""
    config = rendered.config_map(CONFIG_MAP)
    kafkas = rendered.of_kind("Kafka")
    if len(kafkas) != 1:
        return [f"expected one Kafka, found {len(kafkas)}"]
    kafka = kafkas[0]
    cluster = name_of(kafka)
    kafka_config = kafka["spec"]["kafka"].get("config") or {}
    found = []
    expected = set(Topics(config["SWITCHBOARD_TOPIC_NAMESPACE"]).all(channel_names()))
    topics = {t["spec"].get("topicName", name_of(t)): t for t in rendered.of_kind("KafkaTopic")}
    if set(topics) != expected:
        found.append(f"KafkaTopics {sorted(topics)} != the deployment's topics {sorted(expected)}")
    pools = rendered.of_kind("KafkaNodePool")
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    if controllers < 3 or controllers % 2 == 0:
        found.append(f"{controllers} KRaft controllers: use an odd number, 3 or more")
    for resource in [*pools, *topics.values()]:
        if resource["metadata"].get("labels", {}).get("strimzi.io/cluster") != cluster:
            found.append(f"{resource['kind']}/{name_of(resource)} is not on Kafka {cluster}")
    if kafka_config.get("auto.create.topics.enable") is not False:
        found.append("Kafka creates topics automatically")
    if (
        kafka_config.get("default.replication.factor"),
        kafka_config.get("min.insync.replicas"),
    ) != (
        3,
        2,
    ):
        found.append("Kafka defaults are not replication 3, min.insync.replicas 2")
    for name, topic in sorted(topics.items()):
        spec = topic["spec"]
        if spec.get("partitions") != int(config["SWITCHBOARD_TOPIC_PARTITIONS"]):
            found.append(
                f"{name}: {spec.get('partitions')} partitions != SWITCHBOARD_TOPIC_PARTITIONS"
            )
        if spec.get("replicas") != 3 or (spec.get("config") or {}).get("min.insync.replicas") != 2:
            found.append(f"{name}: not replicas 3 with min.insync.replicas 2")
        if spec.get("replicas", 0) > brokers:
            found.append(f"{name}: {spec.get('replicas')} replicas but {brokers} brokers")
    for setting, value in (("KAFKA_REPLICATION_FACTOR", "3"), ("KAFKA_MIN_INSYNC_REPLICAS", "2")):
        if setting in config and config[setting] != value:
            found.append(f"{setting}={config[setting]!r}, the KafkaTopics say {value}")
    return found


def bootstrap_address(rendered: Rendered) -> str:
    """Strimzi's bootstrap Service of the Kafka, its plain listener's port."""
    kafka = rendered.of_kind("Kafka")[0]
    listener = next(x for x in kafka["spec"]["kafka"]["listeners"] if not x.get("tls"))
    namespace = kafka["metadata"]["namespace"]
    return f"{name_of(kafka)}-kafka-bootstrap.{namespace}.svc:{listener['port']}"


def scaling_problems(rendered: Rendered) -> list[str]:
    """ingress: HPA on CPU; brain and egress: KEDA on their groups' lag, at most one replica
    per partition."""
    config = rendered.config_map(CONFIG_MAP)
    topics = Topics(config["SWITCHBOARD_TOPIC_NAMESPACE"])
    partitions = {
        t["spec"].get("topicName", name_of(t)): t["spec"]["partitions"]
        for t in rendered.of_kind("KafkaTopic")
    }
    group = config["SWITCHBOARD_TOPIC_NAMESPACE"] + ".{}"
    wanted = {
        "brain": {(group.format("brain"), topics.inbound)},
        "egress": {(group.format(f"egress.{c}"), topics.replies(c)) for c in channel_names()},
    }
    found = []
    if config["KAFKA_BOOTSTRAP_SERVERS"] != bootstrap_address(rendered):
        found.append(f"KAFKA_BOOTSTRAP_SERVERS is not {bootstrap_address(rendered)}")
    for service, pairs in wanted.items():
        workload = service_workload(rendered, service)
        if "replicas" in workload["spec"]:
            found.append(f"{service}: sets replicas, which KEDA owns")
        scalers = [
            s
            for s in rendered.of_kind("ScaledObject")
            if (s["spec"]["scaleTargetRef"].get("kind"), s["spec"]["scaleTargetRef"]["name"])
            == (workload["kind"], name_of(workload))
        ]
        if len(scalers) != 1:
            found.append(f"{service}: {len(scalers)} ScaledObjects target it")
            continue
        spec = scalers[0]["spec"]
        triggers = spec["triggers"]
        seen = set()
        for trigger in triggers:
            meta = trigger["metadata"]
            if trigger["type"] != "kafka":
                found.append(f"{service}: a {trigger['type']} trigger")
                continue
            seen.add((meta.get("consumerGroup"), meta.get("topic")))
            for key in sorted(set(meta) - KEDA_KAFKA_METADATA):
                found.append(f"{service}: the kafka scaler has no metadata `{key}`")
            if meta.get("bootstrapServers") != config["KAFKA_BOOTSTRAP_SERVERS"]:
                found.append(f"{service}: trigger bootstrapServers {meta.get('bootstrapServers')}")
            if meta.get("allowIdleConsumers", "false") != "false":
                found.append(f"{service}: allowIdleConsumers lets it scale past the partitions")
            if meta.get("offsetResetPolicy") != "earliest":
                found.append(f"{service}: offsetResetPolicy is not the consumers' `earliest`")
            if spec.get("maxReplicaCount") != partitions.get(meta.get("topic")):
                found.append(
                    f"{service}: maxReplicaCount {spec.get('maxReplicaCount')} != "
                    f"{partitions.get(meta.get('topic'))} partitions of {meta.get('topic')}"
                )
        if seen != pairs:
            found.append(f"{service}: triggers on {sorted(seen)}, its groups are {sorted(pairs)}")
        if spec.get("maxReplicaCount") != int(config["SWITCHBOARD_TOPIC_PARTITIONS"]):
            found.append(f"{service}: maxReplicaCount != SWITCHBOARD_TOPIC_PARTITIONS")
        if not 1 <= spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 0):
            found.append(f"{service}: minReplicaCount out of range")
    ingress = service_workload(rendered, "ingress")
    hpas = [
        h
        for h in rendered.of_kind("HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == name_of(ingress)
        and h["spec"]["scaleTargetRef"]["kind"] == ingress["kind"] == "Deployment"
    ]
    if len(hpas) != 1:
        found.append("ingress: needs a Deployment with one HPA")
    elif [m["resource"]["name"] for m in hpas[0]["spec"]["metrics"]] != ["cpu"]:
        found.append("ingress: the HPA does not scale on CPU")
    if "replicas" in ingress["spec"]:
        found.append("ingress: sets replicas, which the HPA owns")
    return found


def disruption_problems(rendered: Rendered) -> list[str]:
    """Each service has one PDB selecting its pods and no other workload's; Services select
    pods that have the ports they target."""
    found = []
    workloads = rendered.workloads()
    for pdb in rendered.of_kind("PodDisruptionBudget"):
        matched = [name_of(w) for w in workloads if selects(pdb["spec"]["selector"], pod_labels(w))]
        if len(matched) != 1:
            found.append(f"PodDisruptionBudget/{name_of(pdb)} selects {matched}")
    for service in SERVICES:
        workload = service_workload(rendered, service)
        pdbs = [
            p
            for p in rendered.of_kind("PodDisruptionBudget")
            if selects(p["spec"]["selector"], pod_labels(workload))
        ]
        if len(pdbs) != 1:
            found.append(f"{service}: {len(pdbs)} PodDisruptionBudgets")
    for svc in rendered.of_kind("Service"):
        matched = [w for w in workloads if selects(svc["spec"]["selector"], pod_labels(w))]
        if len(matched) != 1:
            found.append(f"Service/{name_of(svc)} selects {[name_of(w) for w in matched]}")
            continue
        names = {p.get("name") for c in containers(matched[0]) for p in c.get("ports", [])} | {
            p["containerPort"] for c in containers(matched[0]) for p in c.get("ports", [])
        }
        for port in svc["spec"]["ports"]:
            if port.get("targetPort", port["port"]) not in names:
                found.append(f"Service/{name_of(svc)} targets a port its pods lack: {port}")
    return found


def resource_problems(rendered: Rendered) -> list[str]:
    found = []
    for workload in rendered.workloads():
        for container in containers(workload):
            where = f"{name_of(workload)}/{container['name']}"
            res = container.get("resources") or {}
            for kind in ("cpu", "memory"):
                request = (res.get("requests") or {}).get(kind)
                limit = (res.get("limits") or {}).get(kind)
                if request is None or limit is None:
                    found.append(f"{where}: no {kind} request and limit")
                elif quantity(request) > quantity(limit):
                    found.append(f"{where}: {kind} request {request} above its limit {limit}")
    return found


def fake_problems(rendered: Rendered) -> list[str]:
    """Production deploys no fake and points at no fake; local points every provider at one."""
    config = rendered.config_map(CONFIG_MAP)
    fakes = {
        name_of(w): c["args"][1]
        for w in rendered.workloads()
        for c in containers(w)
        if c.get("args", [None])[0] == "fake"
    }
    found = []
    if rendered.overlay == "production":
        found += [f"production deploys the fake {name}" for name in sorted(fakes)]
        found += [
            f"production {key} points at a fake: {config.get(key)}"
            for key in PROVIDER_BASES
            if "fake" in config.get(key, "")
        ]
        if config.get("SWITCHBOARD_ENV") != "production":
            found.append("production runs with SWITCHBOARD_ENV != production")
        return found
    services = {
        (name_of(s), p["port"]): s for s in rendered.of_kind("Service") for p in s["spec"]["ports"]
    }
    for key in PROVIDER_BASES:
        url = urlsplit(config.get(key, ""))
        svc = services.get((url.hostname or "", url.port))
        targets = [
            fakes.get(name_of(w))
            for w in rendered.workloads()
            if svc and selects(svc["spec"]["selector"], pod_labels(w))
        ]
        if not targets or targets[0] is None:
            found.append(f"{rendered.overlay}: {key}={config.get(key)!r} reaches no fake")
    return found
