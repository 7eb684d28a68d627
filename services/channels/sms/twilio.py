"""Twilio facts both sides of the SMS channel need: settings, webhook signatures, error codes.

Wire format: ../shared/providers.md §2. Ingress verifies `X-Twilio-Signature` on every webhook
(inbound messages and status callbacks); egress sends through the REST API. Signatures are
checked with the `twilio` package's `RequestValidator`, never a hand-written HMAC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator

DEV_ACCOUNT_SID = "AC" + "0" * 32
DEV_AUTH_TOKEN = "dev-twilio-auth-token"  # noqa: S105 - refused in production
TWILIO_TEST_FROM = "+15005550006"
"""Twilio's documented test-credentials sender: valid, and never texts anyone."""

SIGNATURE_HEADER = "X-Twilio-Signature"
INBOUND_PATH = "/v1/twilio/sms"
STATUS_PATH = "/v1/twilio/sms/status"

# REST error codes (providers.md §2.6).
UNSUBSCRIBED = 21610
TOO_MANY_REQUESTS = 20429
INVALID_NUMBER_CODES = frozenset({21211, 21614, 21635})
"""Twilio says the recipient can never get an SMS: invalid, not SMS-capable, landline."""
MAX_BODY_CHARS = 1600


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class TwilioSettings(BaseModel):
    """Twilio account and public-URL settings, shared by ingress and egress.

    Mixed into each service's settings class; the fields read unprefixed environment
    variables, so one `.env` configures both sides. With the defaults (development) the
    system talks to the fake Twilio that `make run` starts.
    """

    model_config = ConfigDict(populate_by_name=True)

    twilio_account_sid: str = Field(
        default=DEV_ACCOUNT_SID,
        pattern=r"^AC[0-9a-fA-F]{32}$",
        validation_alias=_env("TWILIO_ACCOUNT_SID"),
        description="Twilio Account SID (`AC...`): REST path and Basic auth user.",
    )
    twilio_auth_token: SecretStr = Field(
        default=SecretStr(DEV_AUTH_TOKEN),
        validation_alias=_env("TWILIO_AUTH_TOKEN"),
        description="Primary Auth Token: signs Twilio's webhooks and authenticates REST calls.",
    )
    twilio_api_base: str = Field(
        default="https://api.twilio.com",
        validation_alias=_env("TWILIO_API_BASE"),
        description="Twilio REST base URL (the fake Twilio's URL in development and tests).",
    )
    twilio_messaging_service_sid: str | None = Field(
        default=None,
        pattern=r"^MG[0-9a-fA-F]{32}$",
        validation_alias=_env("TWILIO_MESSAGING_SERVICE_SID"),
        description="Send through this Messaging Service (preferred over a From number).",
    )
    twilio_from_number: str = Field(
        default=TWILIO_TEST_FROM,
        validation_alias=_env("TWILIO_FROM_NUMBER"),
        description="Sender number (E.164) when no Messaging Service is set.",
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        validation_alias=_env("PUBLIC_BASE_URL"),
        description="The URL providers reach ingress at (signature URLs, status callbacks).",
    )
    trust_proxy_headers: bool = Field(
        default=False,
        validation_alias=_env("TRUST_PROXY_HEADERS"),
        description="Rebuild webhook URLs from X-Forwarded-Proto/Host (only behind your proxy).",
    )

    @field_validator("public_base_url", "twilio_api_base")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def sender(self) -> str:
        """The sending identity rate limits and opt-outs are scoped to."""
        return self.twilio_messaging_service_sid or self.twilio_from_number

    @property
    def status_callback_url(self) -> str:
        """Where Twilio posts delivery status callbacks (ingress's status endpoint)."""
        return f"{self.public_base_url}{STATUS_PATH}"

    def uses_dev_credentials(self) -> bool:
        """Whether the development Auth Token is still in place."""
        return self.twilio_auth_token.get_secret_value() == DEV_AUTH_TOKEN


def parse_form(body: bytes) -> ImmutableMultiDict[str, str]:
    """A form body as a multi-dict: repeated fields kept, values neither stripped nor re-encoded.

    Raises `ValueError` for a body that is not UTF-8 form encoding.
    """
    text = body.decode("utf-8")
    return ImmutableMultiDict(parse_qsl(text, keep_blank_values=True, strict_parsing=False))


def public_request_url(
    *,
    public_base_url: str,
    path: str,
    raw_query: str,
    trust_proxy: bool,
    headers: Mapping[str, str],
) -> str:
    """The URL Twilio called, as Twilio signed it: scheme, host, path and the raw query.

    Behind a proxy the URL the app sees is not the one Twilio called, so by default it is
    rebuilt from `public_base_url`. `trust_proxy` uses X-Forwarded-Proto/Host instead; turn it
    on only when a proxy you run sets them (otherwise a caller chooses the URL it is checked
    against).
    """
    base = public_base_url
    if trust_proxy:
        configured = urlsplit(public_base_url)
        proto = _first(headers.get("x-forwarded-proto")) or configured.scheme
        host = _first(headers.get("x-forwarded-host")) or headers.get("host") or configured.netloc
        base = f"{proto}://{host}{configured.path}"
    url = f"{base}{path}"
    return f"{url}?{raw_query}" if raw_query else url


def _first(value: str | None) -> str | None:
    # Proxies append: "https, http" means the outermost hop spoke https.
    return value.split(",")[0].strip() if value else None


class TwilioSignatures:
    """Checks and makes `X-Twilio-Signature` values with the account's Auth Token."""

    def __init__(self, auth_token: str) -> None:
        self._validator = RequestValidator(auth_token)

    def is_valid(
        self, url: str, params: ImmutableMultiDict[str, str], signature: str | None
    ) -> bool:
        """True when `signature` is Twilio's signature of `url` and every posted field.

        The SDK validator signs each distinct value of a repeated field and tries the URL
        with and without its default port, as Twilio's signing varies.
        """
        if not signature:
            return False
        return bool(self._validator.validate(url, params, signature))

    def sign(self, url: str, params: Sequence[tuple[str, str]]) -> str:
        """The signature Twilio would send for this request (simulator, fakes, tests)."""
        return str(self._validator.compute_signature(url, ImmutableMultiDict(params)))
