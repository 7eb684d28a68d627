"""The VoIPBin voice channel as the registry sees it: how ingress and egress build it.

Settings: the VoIPBin account and webhook secrets (`VOIPBIN_*`), `PUBLIC_BASE_URL`, the
profile's `VOIPBIN_MAX_SPOKEN_CHARS` and `VOIPBIN_SPEECH_CHARS_PER_S`, the `fetch` timing
`INGRESS_VOIPBIN_*` and the speaking policy `EGRESS_VOICE_*`; see the README's table.
"""

from __future__ import annotations

from fastapi import APIRouter

from services.channels.sdk.plugin import ChannelPlugin, EgressContext, IngressContext
from services.channels.voipbin.client import VoipbinClient
from services.channels.voipbin.inbound.callers import CallResolver
from services.channels.voipbin.inbound.events import VoipbinEvents
from services.channels.voipbin.inbound.fetch import VoipbinFetch
from services.channels.voipbin.outbound import HangupSchedule, VoiceOutput, VoicePolicy
from services.channels.voipbin.profile import NAME, VoiceProfileSettings, voice_profile
from services.channels.voipbin.store import CallRegistry, FetchClaims, ReplyLedger
from services.common.backoff import RetryPolicy
from shared.contracts.inbox import HeldAnswer


class VoipbinInbound:
    """The event webhook and the `fetch` action, sharing one client and call registry."""

    def __init__(self, client: VoipbinClient, events: VoipbinEvents, fetch: VoipbinFetch) -> None:
        self._client = client
        self.events = events
        self.fetch = fetch

    def router(self) -> APIRouter:
        """`POST /v1/voipbin/events` and `/v1/voipbin/fetch`."""
        router = APIRouter()
        router.include_router(self.events.router())
        router.include_router(self.fetch.router())
        return router

    async def run(self) -> None:
        """Nothing in the background: held fetches are answered through the inbox."""
        return None

    async def close(self) -> None:
        """Close the VoIPBin HTTP client."""
        await self._client.aclose()


def build_inbound(ctx: IngressContext) -> VoipbinInbound:
    """Signed events and `fetch`; a held fetch is answered by a `HeldAnswer` in the inbox."""
    settings = ctx.settings
    publisher = ctx.publisher_for(NAME, voice_profile())
    client = VoipbinClient(settings, timeout_s=2.0)
    callers = CallResolver(CallRegistry(ctx.redis, settings.redis_prefix), client, ctx.identity)
    events = VoipbinEvents(settings=settings, resolver=callers, publisher=publisher, ops=ctx.ops)
    fetch = VoipbinFetch(
        token=settings.voipbin_fetch_token.get_secret_value(),
        public_base_url=settings.public_base_url,
        resolver=callers,
        publisher=publisher,
        claims=FetchClaims(ctx.redis, settings.redis_prefix),
        ops=ctx.ops,
        instance_id=settings.instance_id,
        deadline_s=settings.voipbin_fetch_deadline_s,
        hold_ms=settings.voipbin_hold_ms,
        fallback_text=settings.voipbin_fallback_text,
        language=settings.voipbin_language,
        voice_id=settings.voipbin_voice_id,
    )
    ctx.inbox.on(HeldAnswer, fetch.on_inbox_entry)
    return VoipbinInbound(client, events, fetch)


class VoipbinOutbound(VoiceOutput):
    """Voice output plus the hangup loop it needs, and the client it owns."""

    def __init__(self, client: VoipbinClient, **parts: object) -> None:
        super().__init__(client=client, **parts)  # type: ignore[arg-type]
        self._own_client = client

    async def run(self) -> None:
        """Hang up ending calls once their last words have been heard."""
        await self.run_hangups()

    async def close(self) -> None:
        """Close the VoIPBin HTTP client."""
        await self._own_client.aclose()


def build_outbound(ctx: EgressContext) -> VoipbinOutbound:
    """The Speaking API (or `talk`), held-fetch answers, call sessions and hangups."""
    settings, redis, prefix = ctx.settings, ctx.redis, ctx.settings.redis_prefix
    client = VoipbinClient(
        settings,
        timeout_s=settings.voice_send_timeout_s,
        retry=RetryPolicy(
            max_attempts=settings.voice_max_attempts,
            base_s=settings.voice_backoff_base_s,
            cap_s=settings.voice_backoff_cap_s,
            budget_s=settings.voice_retry_budget_s,
        ),
    )
    return VoipbinOutbound(
        client,
        hangups=HangupSchedule(redis, prefix),
        calls=CallRegistry(redis, prefix),
        ledger=ReplyLedger(redis, prefix),
        claims=FetchClaims(redis, prefix),
        inbox=ctx.inbox,
        ops=ctx.ops,
        policy=VoicePolicy(
            language=settings.voipbin_language,
            tts_provider=settings.voipbin_tts_provider,
            voice_id=settings.voipbin_voice_id,
            chars_per_s=VoiceProfileSettings().speech_chars_per_s,
            hangup_wait_max_s=settings.voice_hangup_wait_max_s,
            state_wait_s=settings.voice_state_wait_s,
        ),
    )


VOIPBIN = ChannelPlugin(name=NAME, build_inbound=build_inbound, build_outbound=build_outbound)
