"""Brain settings (env prefix `BRAIN_`; model settings keep OpenAI's usual names)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import BaseServiceSettings, plain_env

DEFAULT_KNOWLEDGE_FILE = Path(__file__).parent / "knowledge.md"


class BrainSettings(BaseServiceSettings):
    """Settings of one brain worker."""

    model_config = SettingsConfigDict(env_prefix="BRAIN_", extra="ignore", populate_by_name=True)

    host: str = Field(default="127.0.0.1", description="Interface of the health/metrics server.")
    port: int = Field(default=8001, description="Port of the health/metrics server.")
    engine: Literal["auto", "openai", "offline"] = Field(
        default="auto",
        description="`auto`: the model server when OPENAI_API_KEY is set, else offline.",
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=plain_env("OPENAI_API_KEY"),
        description="Key of the model server; unset means the offline engine (in `auto`).",
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=plain_env("OPENAI_BASE_URL"),
        description="Any OpenAI-compatible server (vLLM, Ollama, a fake); default OpenAI's.",
    )
    openai_model: str = Field(
        default="gpt-4o-mini", validation_alias=plain_env("OPENAI_MODEL"), description="Model name."
    )
    model_timeout_s: float = Field(default=20.0, gt=0, description="Per model request.")
    model_max_retries: int = Field(
        default=3, ge=0, description="Retries on 429/5xx/timeouts, inside the turn budget."
    )
    model_backoff_base_s: float = Field(
        default=0.25, gt=0, description="First retry waits up to this (full jitter, doubling)."
    )
    model_backoff_cap_s: float = Field(
        default=4.0, gt=0, description="Longest single wait between model retries."
    )
    turn_budget_s: float = Field(
        default=30.0, gt=0, description="Whole-turn limit for the model, retries included."
    )
    apology_text: str = Field(
        default="Sorry, I'm having trouble answering right now. Please try again in a moment.",
        description="Said when the model fails past its budget.",
    )
    knowledge_file: Path = Field(
        default=DEFAULT_KNOWLEDGE_FILE, description="Markdown knowledge of the offline engine."
    )
    memory_max_turns: int = Field(
        default=20, ge=2, description="Turns (user + assistant) kept per conversation."
    )
    memory_ttl_s: int = Field(
        default=30 * 24 * 3600, ge=60, description="Idle time after which memory expires."
    )
    processed_ttl_s: int = Field(
        default=7 * 24 * 3600, ge=60, description="How long a handled message id is remembered."
    )
    summary_max_chars: int = Field(
        default=1500, ge=100, description="Longest running summary of older turns."
    )
    max_in_flight: int = Field(
        default=1000,
        ge=1,
        description="Turns one worker runs at once (across conversations and partitions).",
    )
    lock_ttl_ms: int = Field(
        default=10_000,
        ge=500,
        description="Conversation lock lease; renewed while a turn runs, expires if the worker"
        " dies.",
    )
    drain_timeout_s: float = Field(
        default=5.0, ge=0, description="On partition revocation, wait this long for turns."
    )
    stream_direct: bool = Field(
        default=True,
        description="Also hand each streamed part (VAPI custom LLM) straight to the holder's"
        " inbox, beside the reply topic: the caller hears the first words one Kafka round"
        " trip and egress's poll sooner; egress's copy stays the reliable path.",
    )
    max_attempts: int = Field(
        default=5, ge=1, description="Attempts at a failing event before it is dead-lettered."
    )
