"""Engines the brain can use, and the choice between them."""

from __future__ import annotations

from services.brain.config import BrainSettings
from services.brain.engines.base import (
    Engine,
    EngineError,
    EngineRequest,
    EngineTurn,
    FailureReason,
)

__all__ = [
    "Engine",
    "EngineError",
    "EngineRequest",
    "EngineTurn",
    "FailureReason",
    "build_engine",
]


def build_engine(settings: BrainSettings) -> Engine:
    """The OpenAI-compatible engine when configured (or forced), else the offline one."""
    use_openai = settings.engine == "openai" or (
        settings.engine == "auto" and settings.openai_api_key is not None
    )
    if use_openai:
        from services.brain.engines.openai_engine import OpenAIEngine

        if settings.openai_api_key is None:
            raise ValueError("BRAIN_ENGINE=openai needs OPENAI_API_KEY")
        return OpenAIEngine(
            api_key=settings.openai_api_key.get_secret_value(),
            model=settings.openai_model,
            base_url=settings.openai_base_url,
            timeout_s=settings.model_timeout_s,
            max_retries=settings.model_max_retries,
            turn_budget_s=settings.turn_budget_s,
            backoff_base_s=settings.model_backoff_base_s,
            backoff_cap_s=settings.model_backoff_cap_s,
        )
    from services.brain.engines.offline import KnowledgeBase, OfflineEngine

    return OfflineEngine(KnowledgeBase.from_file(settings.knowledge_file))
