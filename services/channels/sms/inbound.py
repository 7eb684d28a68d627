"""The SMS input channel: Twilio's inbound message webhook and its status callbacks.

`POST /v1/twilio/sms` verifies the signature, handles opt-out/opt-in/help keywords itself
(they never reach the model), publishes every other message as an `InboundMessage` and answers
empty TwiML once Kafka has it. The answer goes out later through egress and the REST API, so
a slow model never runs into Twilio's 15 s webhook timeout.

`POST /v1/twilio/sms/status` records delivery states (forward only) and reports receipts.

Both check the fields they read (`fields.py`) once the signature is verified: anything
refused, a `whatsapp:` sender included, is a 400 with a machine-readable code.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response
from prometheus_client import Counter
from starlette.datastructures import ImmutableMultiDict

from services.channels.sdk.plugin import NoBackgroundWork
from services.channels.sdk.publish import ChannelPublisher, PublishFailed
from services.channels.sms.fields import FormError, inbound_sms, status_callback
from services.channels.sms.keywords import Keyword, classify
from services.channels.sms.profile import NAME
from services.channels.sms.store import SmsConsent, SmsLedger, delivery_status
from services.channels.sms.twilio import (
    INBOUND_PATH,
    SIGNATURE_HEADER,
    STATUS_PATH,
    TwilioSettings,
    TwilioSignatures,
    parse_form,
    public_request_url,
)
from services.common.ops import OpsEmitter
from services.ingress.identity import IdentityResolver
from shared.contracts import DeliveryReceipt, DeliveryStatus, Lifecycle
from shared.logs import get_logger

log = get_logger("ingress.sms")

SMS_WEBHOOKS = Counter("switchboard_sms_webhooks_total", "Twilio webhooks", ["kind", "outcome"])

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_SMS_TEXT = 8000


def twiml(message: str | None = None) -> Response:
    """A TwiML answer (`text/xml`: `text/plain` would be texted back to the customer)."""
    if message is None:
        body = EMPTY_TWIML
    else:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Message>{escape(message)}</Message></Response>"
        )
    return Response(body, media_type="text/xml")


class SmsChannel(NoBackgroundWork):
    """Everything Twilio SMS needs on the ingress side: the inbound adapter of the channel."""

    def __init__(
        self,
        *,
        twilio: TwilioSettings,
        publisher: ChannelPublisher,
        identity: IdentityResolver,
        consent: SmsConsent,
        ledger: SmsLedger,
        ops: OpsEmitter,
        help_text: str,
    ) -> None:
        self._twilio = twilio
        self._signatures = TwilioSignatures(twilio.twilio_auth_token.get_secret_value())
        self._publisher = publisher
        self._identity = identity
        self._consent = consent
        self._ledger = ledger
        self._ops = ops
        self._help_text = help_text

    def router(self) -> APIRouter:
        """The two webhook routes."""
        router = APIRouter(tags=["sms"])
        router.add_api_route(INBOUND_PATH, self.inbound, methods=["POST"])
        router.add_api_route(STATUS_PATH, self.status_callback, methods=["POST"])
        return router

    async def inbound(self, request: Request) -> Response:
        """Twilio's inbound message webhook."""
        form = await self._verified_form(request, "inbound")
        try:
            sms = inbound_sms(form, self._canonical)
        except FormError as error:
            raise await self._refuse("inbound", error) from None
        message_sid, number, body = sms.message_sid, sms.number, sms.body

        keyword = classify(body)
        if keyword is not None:
            return await self._on_keyword(number, message_sid, *keyword)
        if await self._consent.blocked(number) == "opted_out":
            # They told us not to text them: answering would be suppressed anyway, so the
            # model is not asked until they send START.
            await self._observe(Lifecycle.REJECTED, message_sid, reason="opted_out")
            SMS_WEBHOOKS.labels("inbound", "opted_out").inc()
            return twiml()
        text = _with_media_note(body, sms.num_media)
        if not text.strip():
            await self._observe(Lifecycle.REJECTED, message_sid, reason="empty_message")
            SMS_WEBHOOKS.labels("inbound", "empty").inc()
            return twiml()

        conversation_id = await self._identity.resolve(NAME, number)
        try:
            await self._publisher.publish(
                provider_message_id=message_sid,
                address=number,
                conversation_id=conversation_id,
                text=text[:MAX_SMS_TEXT],
            )
        except PublishFailed:
            # Not acknowledged: a 5xx makes Twilio log 11200 and try the fallback URL.
            SMS_WEBHOOKS.labels("inbound", "unavailable").inc()
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "try again") from None
        SMS_WEBHOOKS.labels("inbound", "published").inc()
        return twiml()

    async def _on_keyword(
        self, number: str, message_sid: str, keyword: Keyword, word: str
    ) -> Response:
        SMS_WEBHOOKS.labels("inbound", keyword.value).inc()
        await self._observe(Lifecycle.RECEIVED, message_sid, reason=f"keyword:{keyword.value}")
        if keyword is Keyword.OPT_OUT:
            # Twilio already sent its own confirmation and blocks sends; we stop asking it to.
            await self._consent.opt_out(number, f"keyword:{word}")
            return twiml()
        if keyword is Keyword.OPT_IN:
            await self._consent.opt_in(number)
            return twiml()
        return twiml(self._help_text)

    async def status_callback(self, request: Request) -> Response:
        """Twilio's message status callback: move the delivery state forward, report it."""
        form = await self._verified_form(request, "status")
        try:
            callback = status_callback(form, self._canonical)
        except FormError as error:
            raise await self._refuse("status", error) from None
        message_sid, error_code = callback.message_sid, callback.error_code
        state = delivery_status(callback.status)
        if state is None:  # e.g. `receiving`: not a state of a message we sent
            SMS_WEBHOOKS.labels("status", "ignored").inc()
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        moved, reply_id, conversation_id = await self._ledger.advance_status(
            message_sid, state, error_code
        )
        SMS_WEBHOOKS.labels("status", "moved" if moved else "stale").inc()
        if callback.opted_out:
            await self._consent.opt_out(callback.opted_out, f"twilio:{error_code}")
        if moved and reply_id and conversation_id:
            await self._ops.receipt(
                DeliveryReceipt(
                    reply_id=reply_id,
                    conversation_id=conversation_id,
                    channel=NAME,
                    status=state,
                    provider_message_id=message_sid,
                    error_code=error_code,
                )
            )
            if state is DeliveryStatus.DELIVERED:
                await self._ops.emit(
                    Lifecycle.DELIVERED,
                    channel=NAME,
                    conversation_id=conversation_id,
                    reply_id=reply_id,
                )
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    async def _verified_form(self, request: Request, kind: str) -> ImmutableMultiDict[str, str]:
        """The posted fields, or 403 when the signature is missing or wrong."""
        try:
            form = parse_form(await request.body())
        except ValueError:
            error = FormError("bad_encoding", "the body is not form-encoded UTF-8", "body")
            raise await self._refuse(kind, error) from None
        url = public_request_url(
            public_base_url=self._twilio.public_base_url,
            path=request.url.path,
            raw_query=request.url.query,
            trust_proxy=self._twilio.trust_proxy_headers,
            headers=request.headers,
        )
        if not self._signatures.is_valid(url, form, request.headers.get(SIGNATURE_HEADER)):
            SMS_WEBHOOKS.labels(kind, "bad_signature").inc()
            await self._ops.emit(Lifecycle.REJECTED, channel=NAME, reason="bad_signature")
            log.warning("ingress.sms.bad_signature", kind=kind, path=request.url.path)
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                {"error": "bad_signature", "message": "invalid X-Twilio-Signature"},
            )
        return form

    def _canonical(self, number: str) -> str:
        return self._identity.canonical_address(NAME, number)

    async def _refuse(self, kind: str, error: FormError) -> HTTPException:
        SMS_WEBHOOKS.labels(kind, "bad_request").inc()
        await self._ops.emit(Lifecycle.REJECTED, channel=NAME, reason=error.code)
        # The field's name only: its value may be a number or a message.
        log.info("ingress.sms.bad_request", kind=kind, error=error.code, field=error.field)
        return HTTPException(status.HTTP_400_BAD_REQUEST, error.detail())

    async def _observe(self, step: Lifecycle, message_sid: str, reason: str) -> None:
        await self._ops.emit(step, channel=NAME, message_id=message_sid, reason=reason)


def _with_media_note(body: str, count: int) -> str:
    """The text the brain sees: attachments are not read, but the model should know of them."""
    if count == 0:
        return body
    note = f"[the customer attached {count} file{'s' if count > 1 else ''}]"
    return f"{body}\n{note}" if body.strip() else note
