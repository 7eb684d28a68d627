"""The echo channel's inbound adapter: one JSON route, `POST /v1/echo/messages`.

The body is `{"user", "id", "text"}`; anything else is refused by validation (422) before a
byte is published. An accepted message is answered 202 once Kafka has it; a publish Kafka did
not acknowledge becomes a 503 (ingress's handler for `PublishFailed`), so the client retries.
Posting the same `id` again is a retry of the same message: it keeps its provider id, and the
brain and the outbound adapter answer it once.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from services.channels.sdk.plugin import NoBackgroundWork
from services.channels.sdk.publish import ChannelPublisher

MESSAGES_PATH = "/v1/echo/messages"


class Identity(Protocol):
    """The one thing the channel asks of ingress's identity resolver."""

    async def resolve(self, channel: str, address: str) -> str:
        """The conversation id of `address` on `channel`."""
        ...


class EchoPost(BaseModel):
    """One message from an echo client."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    user: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The client's user id.")
    id: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="The client's id for this message."
    )
    text: str = Field(min_length=1, max_length=2000, pattern=r"\S")


class EchoAccepted(BaseModel):
    """The 202 body: the message is on Kafka and will be answered."""

    id: str
    conversation_id: str


class EchoInbound(NoBackgroundWork):
    """Validates, resolves the user's conversation, publishes through the channel's publisher."""

    def __init__(self, publisher: ChannelPublisher, identity: Identity) -> None:
        self._publisher = publisher
        self._identity = identity

    def router(self) -> APIRouter:
        router = APIRouter()

        @router.post(MESSAGES_PATH, status_code=status.HTTP_202_ACCEPTED)
        async def post_message(message: EchoPost) -> EchoAccepted:
            name = self._publisher.name
            conversation_id = await self._identity.resolve(name, message.user)
            await self._publisher.publish(
                # Scoped by user: two users' "m1" are two messages.
                provider_message_id=f"{message.user}:{message.id}",
                address=message.user,
                conversation_id=conversation_id,
                text=message.text,
            )
            return EchoAccepted(id=message.id, conversation_id=conversation_id)

        return router
