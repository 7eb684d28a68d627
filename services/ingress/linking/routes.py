"""HTTP routes of linking: `POST /v1/identity/link` and `POST /v1/identity/link/verify`.

The caller proves its chat session with the same signed token the WebSocket uses, sent as
`Authorization: Bearer <token>`. Errors are `{"detail": {"error": <code>, "message": ...}}`.

Bodies are read by hand rather than by FastAPI's body parameters: `loads_untrusted` refuses
deep nesting, huge numbers and lone surrogates (400 with its code), and a body of the wrong
shape is a 422 `invalid_body` naming the field, where FastAPI's own 422 would quote the
input (a phone number) back.
"""

# No `from __future__ import annotations` here: FastAPI reads the `Annotated` dependency
# aliases below at runtime, and they are local to `link_router`.

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.channels.sdk.publish import PublishFailed
from services.channels.webchat.tokens import SessionClaims, TokenSigner
from services.common.safe_json import UntrustedJsonError, loads_untrusted
from services.ingress.identity import InvalidPhoneNumber
from services.ingress.linking.service import (
    AlreadyLinked,
    BadCodeFormat,
    LinkBurned,
    LinkError,
    LinkService,
    NoPendingLink,
    RateLimited,
    WrongCode,
)

# A literal: Starlette renamed the 422 constant, and both names are not in every version.
_UNPROCESSABLE = 422

_STATUS: dict[type[LinkError], int] = {
    BadCodeFormat: _UNPROCESSABLE,
    AlreadyLinked: status.HTTP_409_CONFLICT,
    RateLimited: status.HTTP_429_TOO_MANY_REQUESTS,
    NoPendingLink: status.HTTP_410_GONE,
    WrongCode: status.HTTP_400_BAD_REQUEST,
    LinkBurned: status.HTTP_410_GONE,
}


class LinkStartRequest(BaseModel):
    """Body of `POST /v1/identity/link`."""

    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)

    phone: str = Field(
        min_length=1, max_length=64, description="The customer's number, any common format."
    )


class LinkVerifyRequest(BaseModel):
    """Body of `POST /v1/identity/link/verify`."""

    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)

    code: str = Field(
        min_length=1, max_length=32, description="The six digits sent by SMS (spaces ok)."
    )


Body = TypeVar("Body", LinkStartRequest, LinkVerifyRequest)

_PHRASES = {
    "missing": "is required",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "string_too_long": "is too long",
}


async def read_body(request: Request, model: type[Body]) -> Body:
    """The request's JSON body as `model`; 400 when it is not JSON we accept, 422 when it
    has the wrong shape. Neither answer quotes the input."""
    try:
        payload = loads_untrusted(await request.body())
    except UntrustedJsonError as error:
        raise _refusal(status.HTTP_400_BAD_REQUEST, error.code, error.message) from None
    if not isinstance(payload, dict):
        raise _refusal(_UNPROCESSABLE, "invalid_body", "the body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False, include_context=False)[0]
        if first["type"] == "extra_forbidden":
            # The unknown field's name is the sender's input: do not repeat it.
            message = "the body has an unknown field"
            raise _refusal(_UNPROCESSABLE, "invalid_body", message) from None
        field = ".".join(str(part) for part in first["loc"])
        phrase = _PHRASES.get(first["type"], "is not valid")
        raise _refusal(_UNPROCESSABLE, "invalid_body", f"{field} {phrase}", field=field) from None


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body read by `read_body` (FastAPI documents only parameter bodies)."""
    content = {"application/json": {"schema": model.model_json_schema()}}
    return {"requestBody": {"required": True, "content": content}}


def _refusal(
    status_code: int, error: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> HTTPException:
    return HTTPException(
        status_code, detail={"error": error, "message": message, **extra}, headers=headers
    )


def _link_refusal(error: LinkError) -> HTTPException:
    extra: dict[str, Any] = {}
    headers: dict[str, str] | None = None
    if isinstance(error, AlreadyLinked):
        extra["conversation_id"] = error.conversation_id
    elif isinstance(error, RateLimited):
        extra["retry_after_s"] = error.retry_after_s
        headers = {"Retry-After": str(error.retry_after_s)}
    elif isinstance(error, WrongCode):
        extra["attempts_left"] = error.attempts_left
    status_code = _STATUS.get(type(error), status.HTTP_400_BAD_REQUEST)
    return _refusal(status_code, error.code, str(error), headers, **extra)


def _unavailable() -> HTTPException:
    return _refusal(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "unavailable",
        "could not hand the request to Kafka; retry",
        {"Retry-After": "1"},
    )


def link_router(service: LinkService, signer: TokenSigner) -> APIRouter:
    """The linking routes, authenticated by chat session tokens."""
    router = APIRouter(prefix="/v1/identity", tags=["identity"])
    bearer = HTTPBearer(auto_error=False, description="The chat session token.")

    async def session(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> SessionClaims:
        # RFC 6750: a missing or invalid bearer token is 401 with a WWW-Authenticate challenge.
        if credentials is None:
            raise _refusal(
                status.HTTP_401_UNAUTHORIZED,
                "missing_token",
                "send the chat session token as `Authorization: Bearer <token>`",
                {"WWW-Authenticate": 'Bearer realm="chat"'},
            )
        claims = signer.verify(credentials.credentials)
        if claims is None:
            raise _refusal(
                status.HTTP_401_UNAUTHORIZED,
                "invalid_token",
                "the chat session token is malformed, forged or expired",
                {"WWW-Authenticate": 'Bearer realm="chat", error="invalid_token"'},
            )
        return claims

    Session = Annotated[SessionClaims, Depends(session)]

    @router.post(
        "/link", status_code=status.HTTP_202_ACCEPTED, openapi_extra=_body_schema(LinkStartRequest)
    )
    async def start_link(request: Request, claims: Session) -> dict[str, Any]:
        """Send a one-time code by SMS to `phone`, to prove this session owns it.

        `phone` must be a phone number: an address of another channel (`whatsapp:+1...`) is
        422 `invalid_phone`, because the code goes out by SMS."""
        body = await read_body(request, LinkStartRequest)
        try:
            started = await service.start(claims.session_id, body.phone)
        except InvalidPhoneNumber as error:
            raise _refusal(_UNPROCESSABLE, "invalid_phone", str(error)) from None
        except LinkError as error:
            raise _link_refusal(error) from None
        except PublishFailed:
            raise _unavailable() from None
        return {"link_id": started.link_id, "expires_in_s": started.expires_in_s}

    @router.post("/link/verify", openapi_extra=_body_schema(LinkVerifyRequest))
    async def verify_link(request: Request, claims: Session) -> dict[str, Any]:
        """Prove the code; from the next message on, the chat is the phone's conversation."""
        body = await read_body(request, LinkVerifyRequest)
        try:
            done = await service.verify(claims.session_id, body.code, claims.expires_at)
        except LinkError as error:
            raise _link_refusal(error) from None
        except PublishFailed:
            raise _unavailable() from None
        return {"linked": True, "conversation_id": done.conversation_id}

    return router
