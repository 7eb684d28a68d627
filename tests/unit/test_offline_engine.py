"""Offline engine: grounded answers from the shipped knowledge file, memory via history."""

from __future__ import annotations

import pytest

from services.brain.engines.base import EngineRequest, EngineTurn
from services.brain.engines.offline import DEFAULT_KNOWLEDGE_FILE, KnowledgeBase, OfflineEngine

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def knowledge() -> KnowledgeBase:
    return KnowledgeBase.from_file(DEFAULT_KNOWLEDGE_FILE)


@pytest.fixture
def engine(knowledge: KnowledgeBase) -> OfflineEngine:
    return OfflineEngine(knowledge)


def entry_answer(knowledge: KnowledgeBase, heading: str) -> str:
    return next(e.answer for e in knowledge.entries if e.heading == heading)


def request(
    text: str, history: tuple[EngineTurn, ...] = (), channel: str = "chat"
) -> EngineRequest:
    return EngineRequest(conversation_id="c1", channel=channel, user_text=text, history=history)


def test_shipped_file_has_business_and_entries(knowledge: KnowledgeBase) -> None:
    assert knowledge.name == "Switchboard Demo Co."
    assert "internet" in knowledge.description
    assert len(knowledge.entries) == 12
    hours = knowledge.entries[0]
    assert hours.heading == "Opening hours"
    assert "weekend" in hours.keywords
    assert not hours.answer.lower().startswith("keywords")


def test_engine_name_defaults_to_offline(knowledge: KnowledgeBase) -> None:
    assert OfflineEngine(knowledge).name == "offline"
    assert OfflineEngine(knowledge, name="demo").name == "demo"


@pytest.mark.asyncio
async def test_opening_hours_question_answers_from_hours_entry(
    engine: OfflineEngine, knowledge: KnowledgeBase
) -> None:
    answer = await engine.generate(request("What are your opening hours?"))
    assert answer == entry_answer(knowledge, "Opening hours")
    assert "Monday to Friday" in answer


@pytest.mark.asyncio
async def test_pricing_question_answers_from_pricing_entry(
    engine: OfflineEngine, knowledge: KnowledgeBase
) -> None:
    answer = await engine.generate(request("How much do your plans cost?"))
    assert answer == entry_answer(knowledge, "Plans and pricing")
    assert "$30" in answer


@pytest.mark.asyncio
async def test_keyword_paraphrase_matches_entry(
    engine: OfflineEngine, knowledge: KnowledgeBase
) -> None:
    # "technician" only appears in the Keywords line (and body) of the installation entry.
    answer = await engine.generate(request("When can a technician come over?"))
    assert answer == entry_answer(knowledge, "Delivery and installation")
    # "money back" is a keyword of the refund entry, not a word of its answer.
    answer = await engine.generate(request("can I get my money back"))
    assert answer == entry_answer(knowledge, "Refund policy")


@pytest.mark.asyncio
async def test_greeting_differs_for_returning_customer(engine: OfflineEngine) -> None:
    first = await engine.generate(request("Hello!"))
    history = (
        EngineTurn("user", "What are your opening hours?", "sms"),
        EngineTurn("assistant", "We are open Monday to Friday.", "sms"),
    )
    again = await engine.generate(request("good morning", history))
    assert "Switchboard Demo Co." in first
    assert "opening hours" in first
    assert "welcome back" not in first.lower()
    assert "welcome back" in again.lower()
    assert first != again


@pytest.mark.asyncio
async def test_name_is_acknowledged_and_recalled_from_another_channel(
    engine: OfflineEngine,
) -> None:
    ack = await engine.generate(request("Hi, my name is Ana", channel="sms"))
    assert "Ana" in ack
    history = (
        EngineTurn("user", "Hi, my name is Ana", "sms"),
        EngineTurn("assistant", ack, "sms"),
    )
    recalled = await engine.generate(request("Do you remember my name?", history, channel="voice"))
    assert "Ana" in recalled
    assert "sms" in recalled


@pytest.mark.asyncio
async def test_name_recall_without_history_admits_not_knowing(engine: OfflineEngine) -> None:
    answer = await engine.generate(request("what's my name?"))
    assert "don't know your name" in answer


@pytest.mark.asyncio
async def test_unknown_question_falls_back_honestly(
    engine: OfflineEngine, knowledge: KnowledgeBase
) -> None:
    answer = await engine.generate(request("Can you recommend a good pizza recipe?"))
    assert answer.startswith("Sorry, I don't know that one")
    assert "opening hours" in answer and "plans and pricing" in answer
    assert "rephrase" in answer
    assert all(entry.answer not in answer for entry in knowledge.entries)


@pytest.mark.asyncio
async def test_thanks_and_bye_close_politely(engine: OfflineEngine) -> None:
    assert "welcome" in (await engine.generate(request("thanks!"))).lower()
    assert "goodbye" in (await engine.generate(request("ok bye"))).lower()


@pytest.mark.asyncio
async def test_tell_me_more_moves_to_a_related_entry(
    engine: OfflineEngine, knowledge: KnowledgeBase
) -> None:
    hours = entry_answer(knowledge, "Opening hours")
    history = (
        EngineTurn("user", "when are you open?", "chat"),
        EngineTurn("assistant", hours, "chat"),
    )
    answer = await engine.generate(request("tell me more", history))
    assert hours not in answer
    assert any(entry.answer in answer for entry in knowledge.entries)


def test_from_text_without_entries_raises() -> None:
    with pytest.raises(ValueError, match="no knowledge entries"):
        KnowledgeBase.from_text("# Empty Co.\n\nJust an intro, no sections.\n", source="empty.md")


def test_from_file_error_names_the_path(tmp_path) -> None:
    path = tmp_path / "knowledge.md"
    path.write_text("# Only a title\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"knowledge\.md"):
        KnowledgeBase.from_file(path)


def test_from_text_parses_keywords_and_answer() -> None:
    text = "# Tiny Shop\n\nWe sell tea.\n\n## Tea types\nKeywords: green, oolong\n\n"
    kb = KnowledgeBase.from_text(text + "We stock green and black tea.\n")
    assert (kb.name, kb.description) == ("Tiny Shop", "We sell tea.")
    assert kb.entries[0].keywords == ("green", "oolong")
    assert kb.entries[0].answer == "We stock green and black tea."
    assert OfflineEngine(kb).answer("do you have oolong?") == "We stock green and black tea."


@pytest.mark.asyncio
async def test_answers_are_deterministic(engine: OfflineEngine) -> None:
    history = (EngineTurn("user", "I'm Ana", "sms"),)
    for text in ("How do I pay my bill?", "hello", "what's the weather on Mars?"):
        first = await engine.generate(request(text, history))
        second = await engine.generate(request(text, history))
        assert first == second
        assert first
