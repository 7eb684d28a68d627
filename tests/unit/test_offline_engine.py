"""Offline engine: grounded answers from the shipped knowledge file, memory via history."""

from __future__ import annotations

import pytest

from services.brain.engines.base import EngineRequest, EngineTurn
from services.brain.engines.offline import DEFAULT_KNOWLEDGE_FILE, KnowledgeBase, OfflineEngine
from services.brain.prompt import GREETING_INSTRUCTION, KEYS_PRESSED

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
@pytest.mark.parametrize(
    "text", ["ok thanks, bye", "that's all, thank you, goodbye", "thanks bye", "bye bye"]
)
async def test_a_callers_goodbye_is_answered_with_a_goodbye(
    engine: OfflineEngine, text: str
) -> None:
    answer = await engine.generate(request(text, channel="voice"))
    assert "goodbye" in answer.lower()


@pytest.mark.asyncio
async def test_call_greeting_for_a_new_caller_is_short_and_names_the_business(
    engine: OfflineEngine,
) -> None:
    answer = await engine.generate(request(GREETING_INSTRUCTION, channel="voice"))
    assert answer == "Hello, thanks for calling Switchboard Demo Co.! How can I help you today?"


@pytest.mark.asyncio
async def test_call_greeting_welcomes_back_by_name_and_last_topic(
    engine: OfflineEngine, knowledge: KnowledgeBase
) -> None:
    history = (
        EngineTurn("user", "Hi, my name is Ana", "sms"),
        EngineTurn("assistant", "Nice to meet you, Ana! How can I help you today?", "sms"),
        EngineTurn("user", "how much is the fiber plan?", "sms"),
        EngineTurn("assistant", entry_answer(knowledge, "Plans and pricing"), "sms"),
    )
    answer = await engine.generate(request(GREETING_INSTRUCTION, history, channel="voice"))
    assert answer == (
        "Welcome back, Ana! Are you calling about plans and pricing again, or something else?"
    )
    no_topic = await engine.generate(request(GREETING_INSTRUCTION, history[:2], channel="voice"))
    assert no_topic == "Welcome back, Ana! How can I help you today?"


@pytest.mark.asyncio
async def test_call_greeting_recalls_the_name_from_the_summary(engine: OfflineEngine) -> None:
    summary = await engine.summarize("", SMS_EXCHANGE, 1500)
    req = EngineRequest(
        conversation_id="c1", channel="voice", user_text=GREETING_INSTRUCTION, summary=summary
    )
    assert (await engine.generate(req)).startswith("Welcome back, Ana!")


@pytest.mark.asyncio
async def test_keys_pressed_are_acknowledged(engine: OfflineEngine) -> None:
    answer = await engine.generate(request(KEYS_PRESSED.format(keys="12#"), channel="voice"))
    assert answer.startswith("You pressed 12#.")
    assert "opening hours" in answer


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


@pytest.mark.asyncio
async def test_stream_yields_word_chunks_that_join_to_the_answer(engine: OfflineEngine) -> None:
    req = request("What are your opening hours?")
    chunks = [chunk async for chunk in engine.stream(req)]
    answer = await engine.generate(req)
    assert "".join(chunks) == answer
    assert len(chunks) == len(answer.split()) > 3
    assert all(chunk.strip() and len(chunk.split()) == 1 for chunk in chunks)


SMS_EXCHANGE = (
    EngineTurn("user", "Hi, my name is Ana", "sms"),
    EngineTurn("assistant", "Nice to meet you, Ana! How can I help you today?", "sms"),
)


@pytest.mark.asyncio
async def test_summarize_tags_each_exchange_with_its_channel(engine: OfflineEngine) -> None:
    turns = (
        *SMS_EXCHANGE,
        EngineTurn("user", "When are you open?", "voice"),
        EngineTurn("assistant", "Monday to Friday, 9 to 5.", "voice"),
        EngineTurn("assistant", "Anything else?", "chat"),
    )
    summary = await engine.summarize("", turns, 1500)
    assert summary == (
        'On sms the customer said: "Hi, my name is Ana"; you answered: "Nice to meet you, Ana! '
        'How can I help you today?". On voice the customer said: "When are you open?"; you '
        'answered: "Monday to Friday, 9 to 5.". On chat you said: "Anything else?".'
    )
    assert await engine.summarize("", turns, 1500) == summary  # deterministic


@pytest.mark.asyncio
async def test_summarize_folds_into_previous_and_keeps_newest_when_trimming(
    engine: OfflineEngine,
) -> None:
    first = await engine.summarize("", SMS_EXCHANGE, 1500)
    later = (
        EngineTurn("user", "I want to cancel my plan", "chat"),
        EngineTurn("assistant", "I can help with that.", "chat"),
    )
    folded = await engine.summarize(first, later, 1500)
    assert folded.startswith(first + " On chat the customer said:")

    trimmed = await engine.summarize(first, later, 120)
    assert len(trimmed) <= 120
    assert "cancel my plan" in trimmed  # the newest fact survives
    assert "Ana" not in trimmed  # the oldest is dropped whole


@pytest.mark.asyncio
async def test_summarize_shortens_long_quotes_and_never_exceeds_max_chars(
    engine: OfflineEngine, knowledge: KnowledgeBase
) -> None:
    long_answer = " ".join(entry.answer for entry in knowledge.entries)
    turns = tuple(
        turn
        for i in range(30)
        for turn in (
            EngineTurn("user", f"question number {i}", "sms"),
            EngineTurn("assistant", long_answer, "sms"),
        )
    )
    for max_chars in (100, 333, 1500):
        summary = await engine.summarize("", turns, max_chars)
        assert 0 < len(summary) <= max_chars
        assert "question number 29" in summary
    summary = await engine.summarize("", turns, 1500)
    assert long_answer not in summary and "\u2026" in summary


@pytest.mark.asyncio
async def test_name_given_before_summarization_is_still_recalled(engine: OfflineEngine) -> None:
    summary = await engine.summarize("", SMS_EXCHANGE, 1500)
    req = EngineRequest(
        conversation_id="c1",
        channel="voice",
        user_text="Do you remember my name?",
        summary=summary,
    )
    recalled = await engine.generate(req)
    assert "Ana" in recalled and "sms" in recalled


def test_keep_newest_cuts_the_front_at_a_sentence_or_word() -> None:
    from services.brain.engines.summary import keep_newest

    text = "Ana called about billing. She moved house in May. She wants fibre now."
    assert keep_newest(text, 200) == text
    assert keep_newest("  spaced \n out  ", 200) == "spaced out"
    assert keep_newest(text, 45) == "She moved house in May. She wants fibre now."
    clipped = keep_newest("one two three four five six seven eight nine ten", 20)
    assert clipped == "\u2026eight nine ten"
    assert len(clipped) <= 20
