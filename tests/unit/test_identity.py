"""Phone normalization, identity resolution rules and one-time link code handling."""

from __future__ import annotations

import hashlib
import re

import pytest
from pydantic import ValidationError

from services.ingress.config import IngressSettings
from services.ingress.identity import (
    IdentityResolver,
    InvalidPhoneNumber,
    default_conversation_id,
    identity_key,
    normalize_phone,
)
from services.ingress.linking import codes
from shared.contracts import Channel

pytestmark = pytest.mark.unit


# --- normalization ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "+14155550100",
        "+1 (415) 555-0100",
        "(415) 555-0100",
        "415.555.0100",
        "1-415-555-0100",
        "tel:+1-415-555-0100",
        " +1 415 555 0100 ",
    ],
)
def test_every_spelling_of_a_number_is_one_e164(raw: str) -> None:
    assert normalize_phone(raw, "US") == "+14155550100"


def test_the_default_region_applies_only_to_numbers_without_a_country_code() -> None:
    assert normalize_phone("020 7946 0958", "GB") == "+442079460958"
    assert normalize_phone("+1 415 555 0100", "GB") == "+14155550100"
    assert normalize_phone("06 12 34 56 78", "FR") == "+33612345678"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "not a phone number"),
        ("hello", "not a phone number"),
        ("12345", "not a possible"),
        ("+1415555010", "not a possible"),
        ("020 7946 0958", "not a possible"),  # a UK number read as US
        ("+14155550100 ext. 12", "extension"),
        ("+1" + "5" * 80, "at most"),
    ],
)
def test_invalid_numbers_raise_a_clear_error(raw: str, why: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=why) as caught:
        normalize_phone(raw, "US")
    assert isinstance(caught.value, ValueError)
    if raw.strip():
        assert raw not in str(caught.value), "the number itself must not be in the message"


def test_strict_validity_is_only_asked_of_typed_numbers() -> None:
    # +1 099 is a possible length but no valid NANP area code.
    with pytest.raises(InvalidPhoneNumber, match="not a valid"):
        normalize_phone("+1 099 555 0100", "US")
    assert normalize_phone("+1 099 555 0100", "US", require_valid=False) == "+10995550100"


def test_default_region_setting_is_checked_and_uppercased() -> None:
    assert IngressSettings().default_region == "US"
    assert IngressSettings(default_region="gb").default_region == "GB"
    with pytest.raises(ValidationError):
        IngressSettings(default_region="XX")


# --- resolution ------------------------------------------------------------------------------


class FakeRedis:
    """The one Redis call the resolver makes."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.values.get(key)


def resolver(fake: FakeRedis) -> IdentityResolver:
    return IdentityResolver(fake, "sb", "US")  # type: ignore[arg-type]  # a fake, not Redis


@pytest.mark.asyncio
async def test_sms_and_voice_resolve_every_spelling_to_one_conversation() -> None:
    identity = resolver(FakeRedis())
    expected = default_conversation_id(Channel.SMS, "+14155550100")
    for channel in (Channel.SMS, Channel.VOICE):
        for raw in ("+1 (415) 555-0100", "+14155550100", "415-555-0100"):
            assert await identity.resolve(channel, raw) == expected
    assert await identity.resolve(Channel.SMS, "+14155550101") != expected


@pytest.mark.asyncio
async def test_phone_addresses_that_are_not_numbers_are_refused() -> None:
    identity = resolver(FakeRedis())
    with pytest.raises(InvalidPhoneNumber):
        await identity.resolve(Channel.SMS, "not-a-number")


@pytest.mark.asyncio
async def test_chat_sessions_are_not_normalized_and_stay_apart_until_linked() -> None:
    fake = FakeRedis()
    identity = resolver(fake)
    session = "cs_abcdefghijklmnopqrstuvwx"
    assert identity.canonical_address(Channel.CHAT, session) == session
    anonymous = await identity.resolve(Channel.CHAT, session)
    assert anonymous == default_conversation_id(Channel.CHAT, session)
    assert await identity.linked_conversation(Channel.CHAT, session) is None

    phone_conversation = await identity.resolve(Channel.SMS, "+14155550100")
    fake.values[identity_key("sb", Channel.CHAT, session)] = phone_conversation
    assert await identity.resolve(Channel.CHAT, session) == phone_conversation
    assert await identity.linked_conversation(Channel.CHAT, session) == phone_conversation


@pytest.mark.asyncio
async def test_an_explicit_phone_mapping_is_found_from_any_spelling() -> None:
    fake = FakeRedis()
    fake.values[identity_key("sb", Channel.VOICE, "+14155550100")] = "conv_explicit"
    assert await resolver(fake).resolve(Channel.SMS, "(415) 555-0100") == "conv_explicit"


def test_default_conversation_ids_are_stable() -> None:
    # Memory is keyed by these ids: a change would orphan every customer's history.
    digest = hashlib.sha256(b"phone:+14155550100").hexdigest()[:24]
    assert default_conversation_id(Channel.VOICE, "+14155550100") == f"conv_{digest}"


# --- codes -----------------------------------------------------------------------------------

KEY = codes.derive_code_key(b"k" * 40)
LINK = "lnk_0123456789abcdef0123456789abcdef"
PHONE = "+14155550100"


def test_codes_are_six_digits_and_vary() -> None:
    drawn = {codes.new_code() for _ in range(200)}
    assert all(re.fullmatch(r"[0-9]{6}", code) for code in drawn)
    assert len(drawn) > 190


def test_link_ids_are_unique_and_unguessable() -> None:
    ids = {codes.new_link_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"lnk_[0-9a-f]{32}", link_id) for link_id in ids)


def test_the_stored_digest_is_keyed_and_bound_to_link_and_phone() -> None:
    digest = codes.code_digest(KEY, LINK, PHONE, "123456")
    assert "123456" not in digest
    assert digest != hashlib.sha256(b"123456").hexdigest()
    assert codes.code_matches(KEY, LINK, PHONE, "123456", digest)
    assert not codes.code_matches(KEY, LINK, PHONE, "123457", digest)
    assert not codes.code_matches(KEY, "lnk_other", PHONE, "123456", digest)
    assert not codes.code_matches(KEY, LINK, "+14155550101", "123456", digest)
    other_key = codes.derive_code_key(b"j" * 40)
    assert not codes.code_matches(other_key, LINK, PHONE, "123456", digest)


def test_the_code_key_is_not_the_token_secret() -> None:
    assert codes.derive_code_key(b"k" * 40) != b"k" * 40
    assert codes.derive_code_key(b"k" * 40) == KEY


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("123456", "123456"),
        ("012345", "012345"),
        (" 123 456 ", "123456"),
        ("123-456", "123456"),
        ("12345", None),
        ("1234567", None),
        ("12345a", None),
        ("١٢٣٤٥٦", None),  # Arabic-Indic digits are digits to Python, not to us
        ("", None),
    ],
)
def test_typed_codes_are_cleaned_or_refused(raw: str, expected: str | None) -> None:
    assert codes.clean_code(raw) == expected


def test_the_code_sms_names_the_code_and_its_lifetime_in_one_gsm_segment() -> None:
    text = codes.code_text("042917", 600)
    assert text.startswith("Your verification code is 042917. It expires in 10 minutes.")
    assert len(text) <= 160 and text.isascii()
    assert codes.describe_ttl(60) == "1 minute"
    assert codes.describe_ttl(90) == "1 minute"
    assert codes.describe_ttl(45) == "45 seconds"


def test_code_reply_ids_are_deterministic_per_link() -> None:
    assert codes.code_reply_id(LINK) == codes.code_reply_id(LINK)
    assert codes.code_reply_id(LINK) != codes.code_reply_id("lnk_other")
    assert re.fullmatch(r"[0-9a-f]{32}", codes.code_reply_id(LINK))
    assert codes.link_message_id(LINK) == f"link:{LINK}"


def test_premium_rate_numbers_get_no_codes() -> None:
    assert codes.can_receive_codes("+14155550100")
    assert not codes.can_receive_codes("+19005550100")
