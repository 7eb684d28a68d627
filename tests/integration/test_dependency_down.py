"""Ingress with Kafka or Redis unreachable: it starts, says it is not ready (and still alive),
and answers webhooks 503 (so the provider retries) and chat `unavailable`; never a 500."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.channels.sms.twilio import INBOUND_PATH, TwilioSignatures
from services.ingress.config import IngressSettings
from services.ingress.main import create_app
from tests.support.infra import Infra

pytestmark = [pytest.mark.integration]

TOKEN = "integration-twilio-auth-token"
PUBLIC = "https://sb.example.org"
DEAD_KAFKA = "127.0.0.1:1"
DEAD_REDIS = "redis://127.0.0.1:1/0"


def _settings(infra: Infra, namespace: str, **overrides: str) -> IngressSettings:
    fields: dict[str, object] = {
        "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
        "redis_url": infra.redis_url,
        "topic_namespace": namespace,
        "redis_prefix": namespace,
        "topic_partitions": 2,
        "instance_id": f"ingress-{namespace}",
        "twilio_auth_token": SecretStr(TOKEN),
        "public_base_url": PUBLIC,
        "publish_timeout_s": 2,
        **overrides,
    }
    return IngressSettings(**fields)


@pytest.fixture
def kafka_down(infra: Infra, namespace: str) -> Iterator[TestClient]:
    with TestClient(
        create_app(_settings(infra, namespace, kafka_bootstrap_servers=DEAD_KAFKA))
    ) as c:
        yield c


@pytest.fixture
def redis_down(infra: Infra, namespace: str) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(infra, namespace, redis_url=DEAD_REDIS))) as c:
        yield c


def _text(client: TestClient) -> object:
    sid = "SM" + secrets.token_hex(16)
    pairs = [
        ("MessageSid", sid),
        ("AccountSid", "AC" + "1" * 32),
        ("From", "+14155550123"),
        ("To", "+15005550006"),
        ("Body", "where is my parcel"),
        ("NumMedia", "0"),
    ]
    signature = TwilioSignatures(TOKEN).sign(f"{PUBLIC}{INBOUND_PATH}", pairs)
    return client.post(
        INBOUND_PATH,
        content=urlencode(pairs),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


def test_kafka_down_at_start_is_not_ready_but_alive(kafka_down: TestClient) -> None:
    ready = kafka_down.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"kafka": False, "redis": True}
    assert kafka_down.get("/livez").status_code == 200  # a restart would not help


def test_kafka_down_webhook_gets_503(kafka_down: TestClient) -> None:
    response = _text(kafka_down)
    assert response.status_code == 503  # type: ignore[attr-defined]


def test_kafka_down_chat_gets_unavailable_and_keeps_the_socket(kafka_down: TestClient) -> None:
    token = kafka_down.post("/v1/chat/sessions").json()["token"]
    with kafka_down.websocket_connect(f"/v1/chat/ws?token={token}") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"type": "message", "id": "m1", "text": "hello"})
        frame = ws.receive_json()
        assert (frame["type"], frame["code"], frame["id"]) == ("error", "unavailable", "m1")
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"


def test_redis_down_webhook_gets_503_not_500(redis_down: TestClient) -> None:
    response = _text(redis_down)
    assert response.status_code == 503  # type: ignore[attr-defined]
    assert response.headers["retry-after"]  # type: ignore[attr-defined]
    ready = redis_down.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["redis"] is False
