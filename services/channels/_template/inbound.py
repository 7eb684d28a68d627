"""The Template channel's webhook:
`POST /v1/template/messages`.

Verify the signature first (401, nothing published, when it is wrong or missing), then
check the body (400 with a machine-readable code, never quoting the input), then publish
through `ChannelPublisher` and answer 202 once Kafka has the message (503 when it does not,
so the provider retries).

The body assumed here is `{"id": <message id>, "from": <sender>, "text": <text>}`: replace it
with the provider's real payload, and check every field the handler reads.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from services.channels._template.profile import (
    NAME,
)
from services.channels._template.signature import (
    SIGNATURE_HEADER,
    signature_is_valid,
)
from services.channels.sdk.plugin import NoBackgroundWork
from services.channels.sdk.publish import ChannelPublisher, PublishFailed
from services.common.ops import OpsEmitter
from services.common.safe_json import UntrustedJsonError, is_well_formed_text, loads_untrusted
from shared.contracts import Lifecycle
from shared.logs import get_logger

log = get_logger("ingress.template")

PATH = "/v1/template/messages"
MAX_TEXT = 8000


def _well_formed(value: str) -> str:
    if not is_well_formed_text(value):
        raise ValueError("lone surrogate")
    return value


class ProviderMessage(BaseModel):
    """The fields of the webhook body the handler reads; others are ignored."""

    # strict: a number is not an id; hide_input_in_errors: no customer text in an error.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, hide_input_in_errors=True)

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
    sender: Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,128}$")] = Field(alias="from")
    text: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_TEXT), AfterValidator(_well_formed)
    ]


def _refusal(code: str, message: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, {"error": code, "message": message})


def parse_message(body: bytes) -> ProviderMessage:
    """The webhook body as a `ProviderMessage`, or a 400 naming the first bad field."""
    try:
        data: Any = loads_untrusted(body)
    except UntrustedJsonError as error:
        raise _refusal(error.code, error.message) from None
    if not isinstance(data, dict):
        raise _refusal("not_an_object", "the body must be a JSON object")
    try:
        return ProviderMessage.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False, include_context=False)[0]
        field = ".".join(str(part) for part in first["loc"])
        raise _refusal("invalid_field", f"{field} is missing or not valid") from None


class TemplateInbound(NoBackgroundWork):
    """The inbound adapter of the Template channel."""

    def __init__(
        self, *, secret: str, publisher: ChannelPublisher, identity: Any, ops: OpsEmitter
    ) -> None:
        self._secret = secret
        self._publisher = publisher
        self._identity = identity
        """`services.ingress.identity.IdentityResolver`: (channel, address) -> conversation."""
        self._ops = ops

    def router(self) -> APIRouter:
        """The webhook route."""
        router = APIRouter(tags=[NAME])
        router.add_api_route(PATH, self.receive, methods=["POST"], status_code=202)
        return router

    async def receive(self, request: Request) -> JSONResponse:
        """One webhook delivery."""
        body = await request.body()
        if not signature_is_valid(self._secret, body, request.headers.get(SIGNATURE_HEADER)):
            await self._ops.emit(Lifecycle.REJECTED, channel=NAME, reason="bad_signature")
            log.warning("ingress.template.bad_signature")
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                {"error": "bad_signature", "message": f"invalid {SIGNATURE_HEADER}"},
            )
        message = parse_message(body)
        conversation_id = await self._identity.resolve(NAME, message.sender)
        try:
            await self._publisher.publish(
                provider_message_id=message.id,
                address=message.sender,
                conversation_id=conversation_id,
                text=message.text,
            )
        except PublishFailed:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                {"error": "unavailable", "message": "try again"},
            ) from None
        return JSONResponse({"status": "accepted"}, status_code=status.HTTP_202_ACCEPTED)
