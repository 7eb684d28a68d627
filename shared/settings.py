"""Settings every service shares. Each service subclasses `BaseServiceSettings` with its own
env prefix (`INGRESS_`, `BRAIN_`, `EGRESS_`); the infrastructure fields below keep their
plain, unprefixed names so one `.env` serves every process.
"""

from __future__ import annotations

import socket
import uuid
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.topics import Topics


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def plain_env(name: str) -> AliasChoices:
    """Read a field from an unprefixed environment variable."""
    return AliasChoices(name)


class BaseServiceSettings(BaseSettings):
    """Infrastructure settings common to all services."""

    # Compose files and shells pass unset variables as "": treat empty as absent everywhere.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, env_ignore_empty=True)

    environment: Literal["development", "production"] = Field(
        default="development",
        validation_alias=plain_env("SWITCHBOARD_ENV"),
        description="`production` refuses development defaults for secrets.",
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=plain_env("KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated Kafka bootstrap servers.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:16379/0",
        validation_alias=plain_env("REDIS_URL"),
        description=(
            "Redis for memory, locks, sessions and per-instance inboxes: `redis://host:port/0` "
            "for one node, `redis+cluster://host:port[,host:port...]` for a Redis Cluster "
            "(the nodes are seeds; docs/redis-cluster.md)."
        ),
    )
    topic_namespace: str = Field(
        default="switchboard",
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        validation_alias=plain_env("SWITCHBOARD_TOPIC_NAMESPACE"),
        description="Prefix of every topic name (and consumer group); isolates deployments.",
    )
    topic_partitions: int = Field(
        default=6,
        ge=1,
        validation_alias=plain_env("SWITCHBOARD_TOPIC_PARTITIONS"),
        description="Partitions for topics a service creates at start when they are missing.",
    )
    kafka_replication_factor: int | None = Field(
        default=None,
        ge=1,
        validation_alias=plain_env("KAFKA_REPLICATION_FACTOR"),
        description=(
            "Replicas of every topic a service creates. `auto` (or unset): min(3, brokers in "
            "the cluster). See docs/kafka-cluster.md."
        ),
    )
    kafka_min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        validation_alias=plain_env("KAFKA_MIN_INSYNC_REPLICAS"),
        description=(
            "`min.insync.replicas` of every topic a service creates: how many replicas must "
            "hold a write before Kafka acknowledges it (producers use acks=all). `auto` (or "
            "unset): 2 when topics have 3 or more replicas, else 1."
        ),
    )
    redis_prefix: str = Field(
        default="sb",
        validation_alias=plain_env("SWITCHBOARD_REDIS_PREFIX"),
        description="Prefix of every Redis key; isolates deployments sharing a Redis.",
    )
    instance_id: str = Field(
        default_factory=_default_instance_id,
        validation_alias=plain_env("SWITCHBOARD_INSTANCE_ID"),
        description="Name of this process in ops events and inbox keys; unique per process.",
    )
    kafka_group_instance_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        validation_alias=plain_env("KAFKA_GROUP_INSTANCE_ID"),
        description=(
            "Static group membership: this worker's stable name in its consumer groups (the "
            "pod or host name), kept across restarts so a restarted worker gets its partitions "
            "back at once. Two live workers must never share it. Unset: dynamic membership."
        ),
    )
    kafka_session_timeout_ms: int = Field(
        default=10_000,
        ge=6_000,
        le=300_000,
        validation_alias=plain_env("KAFKA_SESSION_TIMEOUT_MS"),
        description=(
            "How long the group waits for a silent worker before handing its partitions on "
            "(a static member that is stopped and not restarted is waited for this long)."
        ),
    )
    wedged_after_s: float = Field(
        default=60.0,
        ge=5.0,
        validation_alias=plain_env("SWITCHBOARD_WEDGED_AFTER_S"),
        description=(
            "`/livez` fails once Kafka or Redis has answered for this long while this service "
            "still could not publish or consume: it is wedged and should be restarted."
        ),
    )
    log_level: str = Field(
        default="INFO", validation_alias=plain_env("LOG_LEVEL"), description="Log threshold."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        validation_alias=plain_env("LOG_FORMAT"),
        description="`auto`: console on a terminal, JSON otherwise.",
    )

    @field_validator("kafka_replication_factor", "kafka_min_insync_replicas", mode="before")
    @classmethod
    def _auto_is_unset(cls, value: object) -> object:
        # "auto" reads better in an env file than an empty value; both mean: follow the cluster.
        if isinstance(value, str) and value.strip().lower() == "auto":
            return None
        return value

    @property
    def topics(self) -> Topics:
        """Topic names of this deployment."""
        return Topics(self.topic_namespace)

    def group_id(self, role: str) -> str:
        """Consumer group of one service role, scoped by the namespace."""
        return f"{self.topic_namespace}.{role}"
