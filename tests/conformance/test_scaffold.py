"""`make new-channel NAME=<name>` (`python -m services.channels.scaffold`), run into a temporary
folder: the new channel imports, builds its adapters, passes the structural checks, refuses
unsigned webhooks with 401, publishes signed ones through `ChannelPublisher`, parks replies it
cannot deliver yet, and is lint- and format-clean whatever the length of its name."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from services.channels.scaffold import ScaffoldError, scaffold
from services.channels.sdk.plugin import IngressContext
from services.channels.sdk.publish import PublishFailed
from services.common.consuming import PermanentFailure
from services.common.inbox import InboxReader
from services.egress.config import EgressSettings
from services.ingress.config import IngressSettings
from shared.contracts import InboundMessage, Lifecycle, Reply
from tests.conformance.structure import channels_from, egress_context, structural_problems
from tests.support.infra import REPO_ROOT
from tests.support.ops import RecordingOps

pytestmark = pytest.mark.unit

SECRET = "kiosk-webhook-secret"
LONGEST = "kiosk_" + "x" * 26
"""32 characters: the longest channel name."""


def run_scaffold(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.channels.scaffold", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_creates_a_channel_that_passes_the_structural_checks(tmp_path: Path) -> None:
    result = run_scaffold("--name", "kiosk", "--into", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "from services.channels.kiosk.channel import KIOSK" in result.stdout
    assert "KIOSK in CHANNELS" in result.stdout
    files = sorted(path.name for path in (tmp_path / "kiosk").iterdir())
    assert files == [
        "README.md",
        "__init__.py",
        "channel.py",
        "inbound.py",
        "outbound.py",
        "profile.py",
        "settings.py",
        "signature.py",
    ]
    readme = (tmp_path / "kiosk" / "README.md").read_text()
    assert readme.startswith("# The Kiosk channel") and "template" not in readme.lower()
    with channels_from(tmp_path):
        assert structural_problems("services.channels.kiosk") == []


@pytest.mark.parametrize(
    "name", ["Kiosk", "9kiosk", "my-kiosk", "sdk", "kiosk_template", "", LONGEST + "x"]
)
def test_names_that_cannot_be_channel_packages_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ScaffoldError):
        scaffold(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    scaffold("kiosk", tmp_path)
    (tmp_path / "kiosk" / "inbound.py").write_text("# edited\n")
    result = run_scaffold("--name", "kiosk", "--into", str(tmp_path))
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert (tmp_path / "kiosk" / "inbound.py").read_text() == "# edited\n"


@pytest.mark.parametrize("name", ["a", "kiosk", "zeta_kiosk2", LONGEST])
def test_the_scaffold_is_lint_and_format_clean(tmp_path: Path, name: str) -> None:
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed in this environment")
    target = scaffold(name, tmp_path)
    config = ["--config", str(REPO_ROOT / "pyproject.toml")]
    # Outside the repository ruff cannot tell the new package is first-party: say so.
    first_party = ["--config", "lint.isort.known-first-party=['services', 'shared']"]
    check = subprocess.run(
        [str(ruff), "check", *config, *first_party, str(target)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(
        [str(ruff), "format", "--check", *config, str(target)], capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout


# -- the scaffolded adapters at work -------------------------------------------------------


@dataclass
class RecordingPublisher:
    """Stands in for ingress's `InboundPublisher`: what reached Kafka."""

    published: list[InboundMessage] = field(default_factory=list)
    fail: bool = False

    async def publish(self, message: InboundMessage) -> None:
        if self.fail:
            raise PublishFailed("KafkaTimeoutError")
        self.published.append(message)


class StubIdentity:
    """Stands in for `IdentityResolver` (no Redis): a fixed conversation per address."""

    def declare(self, channel: str, realm: Any) -> None:
        self.declared = (channel, realm)

    async def resolve(self, channel: str, address: str) -> str:
        return "conv_" + hashlib.sha256(f"{channel}:{address}".encode()).hexdigest()[:24]


@dataclass
class Kiosk:
    client: TestClient
    publisher: RecordingPublisher
    ops: RecordingOps
    sign: Any
    header: str
    profile: Any
    plugin: Any


@pytest.fixture
def kiosk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kiosk]:
    scaffold("kiosk", tmp_path)
    monkeypatch.setenv("KIOSK_SIGNING_SECRET", SECRET)
    with channels_from(tmp_path):
        channel = importlib.import_module("services.channels.kiosk.channel")
        signature = importlib.import_module("services.channels.kiosk.signature")
        profile = importlib.import_module("services.channels.kiosk.profile")
        publisher, ops = RecordingPublisher(), RecordingOps()
        settings = IngressSettings(redis_url="redis://127.0.0.1:9/0", redis_prefix="kiosk")
        redis = Redis.from_url(settings.redis_url)  # never connected
        context = IngressContext(
            settings=settings,
            redis=redis,
            identity=StubIdentity(),
            publisher=publisher,  # type: ignore[arg-type]
            ops=ops,  # type: ignore[arg-type]
            inbox=InboxReader(redis, "kiosk", "ingress-1"),
        )
        app = FastAPI()
        app.include_router(channel.KIOSK.build_inbound(context).router())
        with TestClient(app) as client:
            yield Kiosk(
                client,
                publisher,
                ops,
                signature.sign_body,
                signature.SIGNATURE_HEADER,
                profile.kiosk_profile(),
                channel.KIOSK,
            )


def post(kiosk: Kiosk, body: bytes, signature: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[kiosk.header] = signature
    return kiosk.client.post("/v1/kiosk/messages", content=body, headers=headers)


BODY = json.dumps({"id": "k-1", "from": "kiosk-7", "text": "Is the store open?"}).encode()


def test_the_scaffolded_webhook_refuses_unsigned_and_forged_requests_with_401(
    kiosk: Kiosk,
) -> None:
    assert kiosk.header == "X-Kiosk-Signature"
    for signature in (None, "", kiosk.sign("another-secret", BODY), kiosk.sign(SECRET, b"{}")):
        response = post(kiosk, BODY, signature)
        assert response.status_code == 401, response.text
        assert response.json()["detail"]["error"] == "bad_signature"
    assert kiosk.publisher.published == []
    assert [step for step, _ in kiosk.ops.events] == [Lifecycle.REJECTED] * 4


def test_the_scaffolded_webhook_publishes_signed_messages_through_the_channel_publisher(
    kiosk: Kiosk,
) -> None:
    response = post(kiosk, BODY, kiosk.sign(SECRET, BODY))
    assert response.status_code == 202, response.text
    [message] = kiosk.publisher.published
    assert (message.channel, message.profile) == ("kiosk", kiosk.profile)
    assert (message.provider_message_id, message.address, message.text) == (
        "k-1",
        "kiosk-7",
        "Is the store open?",
    )
    assert message.conversation_id.startswith("conv_")
    # `ChannelPublisher` announced it before publishing.
    assert (Lifecycle.RECEIVED, "kiosk") in [(s, f.get("channel")) for s, f in kiosk.ops.events]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[]", "not_an_object"),
        (b"{", "bad_json"),
        (json.dumps({"id": 5, "from": "kiosk-7", "text": "hi"}).encode(), "invalid_field"),
        (json.dumps({"id": "k-1", "from": "kiosk-7", "text": ""}).encode(), "invalid_field"),
        (b'{"id": "k-1", "from": "kiosk-7", "text": "\\ud800"}', "bad_unicode"),
    ],
)
def test_the_scaffolded_webhook_refuses_bad_bodies_with_400(
    kiosk: Kiosk, body: bytes, code: str
) -> None:
    response = post(kiosk, body, kiosk.sign(SECRET, body))
    assert response.status_code == 400, response.text
    assert response.json()["detail"]["error"] == code
    assert kiosk.publisher.published == []


def test_the_scaffolded_webhook_answers_503_when_kafka_does_not_acknowledge(
    kiosk: Kiosk,
) -> None:
    kiosk.publisher.fail = True
    response = post(kiosk, BODY, kiosk.sign(SECRET, BODY))
    assert response.status_code == 503, response.text


def test_the_scaffolded_outbound_adapter_parks_every_reply_as_not_implemented(
    kiosk: Kiosk,
) -> None:
    settings = EgressSettings(redis_url="redis://127.0.0.1:9/0", redis_prefix="kiosk")
    adapter = kiosk.plugin.build_outbound(
        egress_context(settings, Redis.from_url(settings.redis_url))
    )
    reply = Reply(
        reply_id="r1",
        in_reply_to="k-1",
        conversation_id="conv_1",
        channel="kiosk",
        address="kiosk-7",
        text="Yes, until 9 pm.",
    )
    with pytest.raises(PermanentFailure) as parked:
        asyncio.run(adapter.deliver(reply))
    assert parked.value.reason == "not_implemented"
    assert "services/channels/kiosk/outbound.py" in str(parked.value)
