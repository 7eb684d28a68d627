"""Twilio webhook signatures, URL reconstruction, keywords, TwiML and the webhook field
checks: pure logic."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import ImmutableMultiDict

from services.channels.sms.fields import (
    FormError,
    ascii_number,
    inbound_sms,
    sid,
    status_callback,
)
from services.channels.sms.inbound import EMPTY_TWIML, twiml
from services.channels.sms.keywords import Keyword, classify
from services.channels.sms.twilio import TwilioSignatures, parse_form, public_request_url
from services.common.backoff import RetryPolicy
from services.ingress.identity import normalize_phone

pytestmark = pytest.mark.unit

# The SDK's published test vector (twilio-python tests; providers.md §2.2).
SDK_TOKEN = "12345"
SDK_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
SDK_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]
SDK_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def form_of(pairs: list[tuple[str, str]]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(pairs).encode()


def by_hand(token: str, url: str, pairs: list[tuple[str, str]]) -> str:
    """The algorithm of providers.md §2.2, written out, to cross-check the SDK on new cases."""
    names = sorted({name for name, _ in pairs})
    data = url
    for name in names:
        for value in sorted({v for n, v in pairs if n == name}):
            data += name + value
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_sdk_published_vector_validates() -> None:
    signatures = TwilioSignatures(SDK_TOKEN)
    params = parse_form(form_of(SDK_PARAMS))
    assert signatures.sign(SDK_URL, SDK_PARAMS) == SDK_SIGNATURE
    assert signatures.is_valid(SDK_URL, params, SDK_SIGNATURE)


def test_wrong_token_missing_or_forged_signature_fail() -> None:
    params = parse_form(form_of(SDK_PARAMS))
    assert not TwilioSignatures("54321").is_valid(SDK_URL, params, SDK_SIGNATURE)
    assert not TwilioSignatures(SDK_TOKEN).is_valid(SDK_URL, params, None)
    assert not TwilioSignatures(SDK_TOKEN).is_valid(SDK_URL, params, "")
    forged = SDK_SIGNATURE[:-2] + "A="
    assert not TwilioSignatures(SDK_TOKEN).is_valid(SDK_URL, params, forged)


def test_every_field_is_signed_even_unknown_ones() -> None:
    pairs = [*SDK_PARAMS, ("SomeFutureField", "x")]
    signatures = TwilioSignatures(SDK_TOKEN)
    assert not signatures.is_valid(SDK_URL, parse_form(form_of(pairs)), SDK_SIGNATURE)
    assert signatures.is_valid(
        SDK_URL, parse_form(form_of(pairs)), by_hand(SDK_TOKEN, SDK_URL, pairs)
    )


def test_repeated_parameters_sign_each_distinct_value_sorted() -> None:
    pairs = [
        ("MediaUrl", "https://b.example/2"),
        ("Body", "hi"),
        ("MediaUrl", "https://a.example/1"),
    ]
    signature = by_hand(SDK_TOKEN, SDK_URL, pairs)
    signatures = TwilioSignatures(SDK_TOKEN)
    assert signatures.is_valid(SDK_URL, parse_form(form_of(pairs)), signature)
    # Dropping one of the repeated values must break it: both are covered.
    assert not signatures.is_valid(SDK_URL, parse_form(form_of(pairs[:2])), signature)


def test_url_with_and_without_default_port_both_validate() -> None:
    signatures = TwilioSignatures(SDK_TOKEN)
    params = parse_form(form_of(SDK_PARAMS))
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    # Twilio signed without the port, we see it with: valid, and the other way round too.
    assert signatures.is_valid(with_port, params, SDK_SIGNATURE)
    signed_with_port = by_hand(SDK_TOKEN, with_port, SDK_PARAMS)
    assert signatures.is_valid(SDK_URL, params, signed_with_port)


def test_stale_url_fails() -> None:
    params = parse_form(form_of(SDK_PARAMS))
    other = "https://mycompany.com/old-path.php?foo=1&bar=2"
    assert not TwilioSignatures(SDK_TOKEN).is_valid(other, params, SDK_SIGNATURE)


def test_form_values_are_not_stripped_or_reencoded() -> None:
    params = parse_form(b"Body=%20hello%20&Empty=&Plus=a+b")
    assert params["Body"] == " hello "
    assert params["Empty"] == ""
    assert params["Plus"] == "a b"


def test_public_url_uses_configured_base_and_raw_query() -> None:
    url = public_request_url(
        public_base_url="https://sb.example.org/prefix",
        path="/v1/twilio/sms",
        raw_query="a=1%202&b=x",
        trust_proxy=False,
        headers={"x-forwarded-proto": "http", "x-forwarded-host": "evil.example"},
    )
    assert url == "https://sb.example.org/prefix/v1/twilio/sms?a=1%202&b=x"


def test_public_url_honours_forwarded_headers_only_when_trusted() -> None:
    url = public_request_url(
        public_base_url="http://127.0.0.1:8000",
        path="/v1/twilio/sms",
        raw_query="",
        trust_proxy=True,
        headers={"x-forwarded-proto": "https, http", "x-forwarded-host": "sb.example.org"},
    )
    assert url == "https://sb.example.org/v1/twilio/sms"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", Keyword.OPT_OUT),
        ("  stopall \n", Keyword.OPT_OUT),
        ("Unsubscribe", Keyword.OPT_OUT),
        ("cancel", Keyword.OPT_OUT),
        ("End", Keyword.OPT_OUT),
        ("quit", Keyword.OPT_OUT),
        ("start", Keyword.OPT_IN),
        ("YES", Keyword.OPT_IN),
        ("Unstop", Keyword.OPT_IN),
        ("help", Keyword.HELP),
        ("INFO", Keyword.HELP),
    ],
)
def test_keywords_whole_message_any_case(body: str, expected: Keyword) -> None:
    found = classify(body)
    assert found is not None and found[0] is expected


@pytest.mark.parametrize("body", ["stop please", "Stop.", "please stop", "yes, book it", ""])
def test_keywords_inside_a_sentence_are_ordinary_messages(body: str) -> None:
    assert classify(body) is None


def test_twiml_is_xml_and_escapes_text() -> None:
    empty = twiml()
    assert empty.media_type == "text/xml"
    assert empty.body.decode() == EMPTY_TWIML
    helped = twiml("Terms & <conditions>")
    assert b"<Message>Terms &amp; &lt;conditions&gt;</Message>" in helped.body


def test_send_backoff_is_capped_jittered_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=4.0)
    delays = [policy.delay_s(attempt, None) for attempt in range(1, 12) for _ in range(20)]
    assert all(0 <= delay <= 4.0 for delay in delays)
    assert len({round(delay, 6) for delay in delays}) > 50  # jittered, not a fixed ladder
    assert policy.delay_s(1, 7.0) == 7.0


def test_twilio_error_messages_lose_phone_numbers() -> None:
    from services.channels.sms.client import TwilioError

    error = TwilioError(
        400, 21211, "The 'To' number +14155550100 is not a valid phone number.", None
    )
    assert "+14155550100" not in str(error) and "4155550100" not in error.message
    assert error.message == "The 'To' number <number> is not a valid phone number."
    assert "21211" in str(error)


# --- webhook fields -------------------------------------------------------------------------


def canonical(raw: str) -> str:
    return normalize_phone(raw, "US", require_valid=False)


def form(*pairs: tuple[str, str]) -> ImmutableMultiDict[str, str]:
    return ImmutableMultiDict(pairs)


INBOUND = (
    ("MessageSid", "SM" + "a" * 32),
    ("From", "+1 415-555-0123"),
    ("Body", "hi"),
    ("NumMedia", "2"),
)


def replaced(pairs: tuple[tuple[str, str], ...], name: str, value: str) -> list[tuple[str, str]]:
    return [(k, value if k == name else v) for k, v in pairs]


def refusal(fields: ImmutableMultiDict[str, str]) -> FormError:
    with pytest.raises(FormError) as caught:
        inbound_sms(fields, canonical)
    return caught.value


def test_a_good_inbound_form_is_read_and_normalized() -> None:
    sms = inbound_sms(form(*INBOUND), canonical)
    assert (sms.message_sid, sms.number, sms.body, sms.num_media) == (
        "SM" + "a" * 32,
        "+14155550123",
        "hi",
        2,
    )


@pytest.mark.parametrize(
    "value", ["\u00b2", "\u0661\u0662", "\uff15", "1" * 5000, "-1", " 1", "1e3"]
)
def test_num_media_must_be_a_few_ascii_digits(value: str) -> None:
    # "\u00b2".isdigit() is True and int() of it raises; 5,000 digits exceed CPython's limit.
    error = refusal(form(*replaced(INBOUND, "NumMedia", value)))
    assert (error.code, error.field) == ("invalid_field", "NumMedia")
    assert value.strip() not in error.message


def test_an_absent_or_empty_num_media_is_none() -> None:
    without = [pair for pair in INBOUND if pair[0] != "NumMedia"]
    assert inbound_sms(form(*without), canonical).num_media == 0
    assert inbound_sms(form(*replaced(INBOUND, "NumMedia", "")), canonical).num_media == 0


@pytest.mark.parametrize("value", ["x" * 100_000, "SM 123", "SM\u00e9", "SM-1", "SM\ufffd"])
def test_sids_are_short_ascii_letters_and_digits(value: str) -> None:
    error = refusal(form(*replaced(INBOUND, "MessageSid", value)))
    assert (error.code, error.field) == ("invalid_field", "MessageSid")


def test_a_bad_sid_under_the_older_name_is_refused_too() -> None:
    error = refusal(form(*INBOUND, ("SmsMessageSid", "x" * 65)))
    assert error.field == "SmsMessageSid"


def test_a_message_needs_a_sid_and_a_sender() -> None:
    assert refusal(form(*replaced(INBOUND, "MessageSid", ""))).code == "missing_field"
    without_from = [pair for pair in INBOUND if pair[0] != "From"]
    assert refusal(form(*without_from)).field == "From"


@pytest.mark.parametrize(
    ("sender", "code"),
    [
        ("whatsapp:+14155550123", "unsupported_address"),
        ("WhatsApp:+14155550123", "unsupported_address"),
        ("messenger:1234567890", "unsupported_address"),
        (
            "\uff0b\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff12\uff13",
            "invalid_address",
        ),
        ("not-a-number", "invalid_address"),
        ("+1" + "5" * 5000, "invalid_address"),
    ],
)
def test_the_sender_must_be_an_sms_number(sender: str, code: str) -> None:
    error = refusal(form(*replaced(INBOUND, "From", sender)))
    assert (error.code, error.field) == (code, "From")
    assert "14155550123" not in error.message


def test_a_repeated_field_that_is_read_is_refused() -> None:
    error = refusal(form(*INBOUND, ("From", "+14155550199")))
    assert (error.code, error.field) == ("repeated_field", "From")
    # Fields nobody reads may repeat (Twilio adds fields; the signature covers them all).
    assert inbound_sms(form(*INBOUND, ("Extra", "a"), ("Extra", "b")), canonical)


def test_status_callbacks_read_to_only_for_an_opt_out() -> None:
    base = (("MessageSid", "SM" + "b" * 32), ("MessageStatus", "delivered"))
    plain = status_callback(form(*base, ("To", "whatsapp:+1")), canonical)
    assert (plain.status, plain.error_code, plain.opted_out) == ("delivered", None, None)
    opted = status_callback(form(*base, ("ErrorCode", "21610"), ("To", "+14155550123")), canonical)
    assert opted.opted_out == "+14155550123"
    with pytest.raises(FormError) as caught:
        status_callback(form(*base, ("ErrorCode", "21610"), ("To", "x" * 100_000)), canonical)
    assert caught.value.field == "To"
    with pytest.raises(FormError) as caught:
        status_callback(form(*base, ("ErrorCode", "\u00b2\u00b9\u2076\u00b9\u2070")), canonical)
    assert caught.value.field == "ErrorCode"
    with pytest.raises(FormError) as caught:
        status_callback(form(("MessageSid", "SM1")), canonical)
    assert caught.value.field == "MessageStatus"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_ascii_number_either_returns_ascii_digits_or_refuses(value: str) -> None:
    try:
        number = ascii_number(form(("N", value)), "N", 2)
    except FormError as error:
        assert error.code in ("invalid_field", "repeated_field")
        return
    assert number is None or (number.isascii() and number.isdigit() and len(number) <= 2)
    if number is not None:
        int(number)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(categories=["Cs", "L", "N", "P", "S", "Zs"])))
def test_sid_either_returns_a_safe_id_or_refuses(value: str) -> None:
    try:
        found = sid(form(("S", value)), "S")
    except FormError:
        return
    assert found is None or (found.isascii() and found.isalnum() and len(found) <= 64)
