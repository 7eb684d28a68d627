"""`switchboard voipbin setup | call`: the pure parts (comparison, addresses, output)."""

from __future__ import annotations

import pytest

from services.channels.voipbin import actions as voipbin_actions
from services.channels.voipbin.errors import VoipbinError, VoipbinUnreachable
from services.channels.voipbin.tools.setup import (
    FLOW_DETAIL,
    SetupError,
    SetupResult,
    address,
    call_id_of,
    customer_update,
    desired_actions,
    error_line,
    flow_is_current,
    mask,
    setup_report,
)

pytestmark = pytest.mark.unit

PUBLIC = "https://sb.example"
TOKEN = "fetch-token-0123456789abcdefghijklmnop"


def stored(actions: list[dict[str, object]]) -> list[dict[str, object]]:
    """Actions as VoIPBin stores them: with ids and a nil next_id."""
    return [
        {
            "id": f"00000000-0000-4000-8000-00000000000{i}",
            "next_id": "00000000-0000-0000-0000-000000000000",
        }
        | action
        for i, action in enumerate(actions)
    ]


def test_the_flow_is_answer_then_fetch_from_ingress() -> None:
    assert desired_actions(PUBLIC + "/", TOKEN) == [
        {"type": "answer"},
        {
            "type": "fetch",
            "option": {"event_url": f"{PUBLIC}/v1/voipbin/fetch/{TOKEN}", "event_method": "POST"},
        },
    ]


def test_ids_voipbin_adds_do_not_make_a_flow_differ() -> None:
    wanted = desired_actions(PUBLIC, TOKEN)
    flow = {"detail": FLOW_DETAIL, "actions": stored(wanted)}
    assert flow_is_current(flow, wanted)
    answer_with_empty_option = {"type": "answer", "option": {}}
    assert flow_is_current(
        {"detail": FLOW_DETAIL, "actions": stored([answer_with_empty_option, wanted[1]])}, wanted
    )


@pytest.mark.parametrize(
    "flow",
    [
        {"detail": FLOW_DETAIL, "actions": stored(desired_actions("https://old.example", TOKEN))},
        {"detail": FLOW_DETAIL, "actions": stored(desired_actions(PUBLIC, TOKEN)[:1])},
        {"detail": FLOW_DETAIL, "actions": stored([voipbin_actions.fetch(f"{PUBLIC}/x", "GET")])},
        {"detail": "edited by hand", "actions": stored(desired_actions(PUBLIC, TOKEN))},
        {"detail": FLOW_DETAIL, "actions": None},
        {"detail": FLOW_DETAIL, "actions": ["answer"]},
    ],
)
def test_a_flow_that_differs_is_not_current(flow: dict[str, object]) -> None:
    assert not flow_is_current(flow, desired_actions(PUBLIC, TOKEN))


def test_the_customer_update_keeps_the_other_fields() -> None:
    customer = {
        "id": "c",
        "name": "Acme",
        "detail": "",
        "email": "ops@acme.example",
        "webhook_secret": "never sent back",
        "webhook_uri": "https://old.example/hook",
        "webhook_method": "GET",
    }
    assert customer_update(customer, PUBLIC + "/v1/voipbin/events") == {
        "name": "Acme",
        "detail": "",
        "email": "ops@acme.example",
        "webhook_uri": PUBLIC + "/v1/voipbin/events",
        "webhook_method": "POST",
    }


def test_secrets_are_masked_to_a_short_prefix() -> None:
    assert mask("abcdefghijklmnop") == "abcd…"
    assert mask("short") == "…"
    assert mask("") == "…"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("+15551234567", {"type": "tel", "target": "+15551234567"}),
        (" +442071234567 ", {"type": "tel", "target": "+442071234567"}),
        (
            "sip:direct.0123456789ab@sip.voipbin.net",
            {"type": "sip", "target": "direct.0123456789ab@sip.voipbin.net"},
        ),
        ("alice@pbx.example", {"type": "sip", "target": "alice@pbx.example"}),
    ],
)
def test_addresses_are_tel_for_numbers_and_sip_without_the_scheme(
    target: str, expected: dict[str, str]
) -> None:
    assert address(target) == expected


@pytest.mark.parametrize("target", ["5551234567", "+0123", "sip:nohost", "sip:@host", "", "a b@c"])
def test_other_destinations_are_refused(target: str) -> None:
    with pytest.raises(ValueError, match=r"\+E\.164"):
        address(target)


def test_the_call_id_comes_from_calls_or_groupcalls() -> None:
    assert call_id_of({"calls": [{"id": "c1"}], "groupcalls": []}) == "c1"
    assert call_id_of({"calls": [], "groupcalls": [{"id": "g", "call_ids": ["c2"]}]}) == "c2"
    with pytest.raises(SetupError):
        call_id_of({"calls": [], "groupcalls": [{"id": "g", "call_ids": []}]})


def test_the_report_shows_no_secret_in_full() -> None:
    secret = "webhook-secret-0123456789abcdefgh"
    result = SetupResult(
        uri="sip:direct.0123456789ab@sip.voipbin.net",
        flow_id="f-1",
        changed=["webhook", "flow updated"],
        webhook_uri=PUBLIC + "/v1/voipbin/events",
        webhook_secret=secret,
    )
    lines = setup_report(
        result, flow_name="switchboard", public_url=PUBLIC, fetch_token=TOKEN, show_secret=False
    )
    text = "\n".join(lines)
    assert secret not in text
    assert TOKEN not in text
    assert f"{PUBLIC}/v1/voipbin/fetch/fetc…" in text
    assert "[updated]" in text
    assert lines[-1] == "SIP URI:   sip:direct.0123456789ab@sip.voipbin.net"
    assert secret not in repr(result)
    shown = setup_report(
        result, flow_name="switchboard", public_url=PUBLIC, fetch_token=TOKEN, show_secret=True
    )
    assert f"VOIPBIN_WEBHOOK_SECRET={secret}" in shown


def test_error_lines_never_carry_the_accesskey() -> None:
    key = "the-accesskey-42"
    refused = VoipbinError(401, "INVALID_CREDENTIALS", "bad key")
    assert "VOIPBIN_ACCESS_KEY" in error_line(refused, api_base="https://a", access_key=key)
    leaky = VoipbinError(400, "INVALID_ARGUMENT", f"echoed {key}")
    assert key not in error_line(leaky, api_base="https://a", access_key=key)
    down = error_line(
        VoipbinUnreachable("GET /customer: ConnectError"), api_base="https://a", access_key=key
    )
    assert down.startswith("error: cannot reach VoIPBin at https://a")
