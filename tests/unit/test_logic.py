import pytest
from pydantic import ValidationError

from services.brain.shaping import shape, strip_markdown
from services.channels.sms.profile import sms_profile
from services.channels.webchat.profile import chat_profile
from services.ingress.config import IngressSettings
from services.ingress.identity import default_conversation_id
from shared.contracts import Channel
from shared.logs import redact
from shared.tracing import child_of, from_headers, new_trace, to_headers

pytestmark = pytest.mark.unit


def test_voice_and_sms_share_a_conversation_chat_does_not() -> None:
    number = "+15551234567"
    assert default_conversation_id(Channel.SMS, number) == default_conversation_id(
        Channel.VOICE, number
    )
    assert default_conversation_id(Channel.CHAT, number) != default_conversation_id(
        Channel.SMS, number
    )
    assert default_conversation_id(Channel.SMS, number) != default_conversation_id(
        Channel.SMS, "+15557654321"
    )


def test_chat_keeps_markdown_sms_and_voice_get_plain_text() -> None:
    text = "**Hours**: see [our page](https://example.org)\n- Mon to Fri"
    assert shape(chat_profile(), text) == text
    plain = shape(sms_profile(), text)
    assert "**" not in plain and "[" not in plain and "- Mon" not in plain
    assert "https://example.org" in plain
    assert strip_markdown("# Title\n`code` and _x_") == "Title\ncode and x"


def test_trace_context_propagates_trace_id() -> None:
    parent = new_trace()
    child = child_of(parent)
    assert child.traceparent.split("-")[1] == parent.traceparent.split("-")[1]
    assert child.traceparent != parent.traceparent
    assert from_headers(to_headers(child)) == child
    assert from_headers({"traceparent": "nonsense"}) is None


def test_secrets_are_redacted_from_urls() -> None:
    assert redact("GET /v1/calls?accesskey=abc123&x=1") == "GET /v1/calls?accesskey=***&x=1"


def test_production_refuses_the_development_chat_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_ENV", "production")
    with pytest.raises(ValidationError):
        IngressSettings()
    monkeypatch.setenv("INGRESS_CHAT_TOKEN_SECRET", "s" * 40)
    with pytest.raises(ValidationError, match="TWILIO_AUTH_TOKEN"):
        IngressSettings()  # the development Twilio token is refused too
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "t" * 32)
    with pytest.raises(ValidationError, match="VOIPBIN_ACCESS_KEY"):
        IngressSettings()  # and VoIPBin's development credentials
    monkeypatch.setenv("VOIPBIN_ACCESS_KEY", "k" * 32)
    monkeypatch.setenv("VOIPBIN_WEBHOOK_SECRET", "w" * 32)
    monkeypatch.setenv("VOIPBIN_FETCH_TOKEN", "f" * 32)
    assert IngressSettings().chat_token_secret.get_secret_value() == "s" * 40


def test_infrastructure_settings_use_plain_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:1")
    monkeypatch.setenv("INGRESS_PORT", "9123")
    settings = IngressSettings()
    assert (settings.kafka_bootstrap_servers, settings.port) == ("k:1", 9123)


def test_empty_model_key_means_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.brain.config import BrainSettings
    from services.brain.engines import build_engine

    monkeypatch.setenv("OPENAI_API_KEY", "")
    monkeypatch.setenv("OPENAI_BASE_URL", "")
    settings = BrainSettings()
    assert settings.openai_api_key is None and settings.openai_base_url is None
    assert build_engine(settings).name == "offline"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert build_engine(BrainSettings()).name == "openai"


def test_empty_variables_fall_back_to_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.brain.config import BrainSettings

    monkeypatch.setenv("OPENAI_MODEL", "")
    monkeypatch.setenv("INGRESS_CHAT_TOKEN_SECRET", "")
    monkeypatch.setenv("INGRESS_PORT", "")
    assert BrainSettings().openai_model == "gpt-4o-mini"
    ingress = IngressSettings()
    assert ingress.port == 8000
    assert len(ingress.chat_token_secret.get_secret_value()) >= 32


def test_long_answers_are_capped_at_a_word_boundary() -> None:
    from services.brain.shaping import MAX_REPLY_CHARS

    shaped = shape(chat_profile(), "word " * 3000)
    assert len(shaped) <= MAX_REPLY_CHARS
    assert shaped.endswith("word…")
    assert shape(sms_profile(), "short") == "short"
