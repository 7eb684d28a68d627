"""Offline engine: answers from an editable markdown knowledge file, no model needed.

Used when no model credentials are configured. It handles greetings (including a call's
greeting turn: by name and last topic when the history knows them), names (recalled from
the shared, cross-channel history), keypad presses, thanks/bye and "tell me more", and
otherwise answers with the best-matching knowledge entry, or admits it does not know.
Deterministic and pure Python: the file is read once, at construction.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.brain.engines.base import EngineRequest, EngineTurn
from services.brain.engines.summary import customer_quotes, extractive_summary
from services.brain.goodbye import is_goodbye
from services.brain.prompt import GREETING_INSTRUCTION, KEYS_PRESSED

DEFAULT_KNOWLEDGE_FILE = Path(__file__).resolve().parents[1] / "knowledge.md"


def words(text: str) -> list[str]:
    """Lowercase words with apostrophes removed ("what's" -> "whats")."""
    return re.findall(r"[a-z0-9]+", text.lower().replace("'", "").replace("\u2019", ""))


STOP_WORDS = frozenset(
    words("""a an the is are am was were be been being do does did i you your yours my me we
    our us it its to of in on at for from by and or but with what whats which who when where
    how can could would will should shall may might please this that these those there here
    have has had get got about any some just im ive id dont not no so if then than too very
    tell know want need like also much many""")
)
GREETING_WORDS = frozenset(words("hi hello hey hiya howdy good morning afternoon evening"))
THANKS_WORDS = frozenset(words("thanks thank thx ty cheers appreciate great ok okay"))
BYE_WORDS = frozenset(words("bye goodbye goodnight later see ya farewell"))
NOT_NAMES = frozenset(words("fine good ok okay new still sorry back now again interested sure"))

NAME_RE = re.compile(r"\b(my name is|my name's|call me|i am|i'm|im)\s+([a-z][a-z'-]*)", re.I)
RECALL_RE = re.compile(r"\b(what'?s|what is|know|remember) my name\b|\bwho am i\b|\bremember me\b")
KEYS_RE = re.compile(re.escape(KEYS_PRESSED).replace(re.escape("{keys}"), "([0-9*#A-D]+)"))
FOLLOW_UP_RE = re.compile(r"^(and|more|go on|what else|tell me more|more (info|details?))$")
HEAD_WEIGHT = 3.0  # a heading/keyword hit counts three times a body hit
MIN_SCORE = 3.0  # body-only matches need several words, not one stray word


def stem(word: str) -> str:
    """Very light stemming: enough for hours/hour, pricing/price, cancelled/cancel."""
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith(("ied", "ies")):
        word = word[:-3] + "y"
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us")):
        word = word[:-1]
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Stemmed content terms used for matching."""
    return [stem(w) for w in words(text) if w not in STOP_WORDS]


@dataclass(frozen=True)
class Entry:
    """One knowledge entry: a topic heading, extra match keywords and the answer text."""

    heading: str
    keywords: tuple[str, ...]
    answer: str
    head_terms: frozenset[str] = field(init=False, repr=False)
    body_terms: Counter[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        head = frozenset(terms(" ".join((self.heading, *self.keywords))))
        object.__setattr__(self, "head_terms", head)
        object.__setattr__(self, "body_terms", Counter(terms(self.answer)))


class KnowledgeBase:
    """Business name, description and entries parsed from a markdown knowledge file."""

    def __init__(self, name: str, description: str, entries: Sequence[Entry]) -> None:
        self.name, self.description, self.entries = name, description, tuple(entries)
        doc_freq = Counter(t for e in self.entries for t in e.head_terms | set(e.body_terms))
        n = len(self.entries)
        self._idf = {t: math.log(1 + n / df) for t, df in doc_freq.items()}
        self._avg_len = sum(e.body_terms.total() for e in self.entries) / max(n, 1) or 1.0

    @classmethod
    def from_file(cls, path: str | Path) -> KnowledgeBase:
        """Load a knowledge file; raises ValueError naming the path when it has no entries."""
        return cls.from_text(Path(path).read_text(encoding="utf-8"), source=str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "<text>") -> KnowledgeBase:
        """Parse knowledge markdown (see services/brain/knowledge.md for the format)."""
        text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
        name, intro = "", []
        sections: list[tuple[str, list[str]]] = []
        for line in text.splitlines():
            if line.startswith("## "):
                sections.append((line[3:].strip(), []))
            elif sections:
                sections[-1][1].append(line)
            elif line.startswith("# ") and not name:
                name = line[2:].strip()
            elif line.strip():
                intro.append(line.strip())
        entries = [entry for heading, lines in sections if (entry := _parse_entry(heading, lines))]
        if not entries:
            raise ValueError(f"{source}: no knowledge entries ('## Heading' + answer text) found")
        return cls(name or "our team", " ".join(intro), entries)

    def topics(self, count: int = 3) -> str:
        """The first `count` headings as "a, b, or c", for greetings and fallbacks."""
        names = [e.heading[0].lower() + e.heading[1:] for e in self.entries[:count]]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + ", or " + names[-1]

    def search(self, text: str, exclude: Sequence[Entry] = ()) -> list[tuple[float, Entry]]:
        """Entries matching `text` as (score, entry), best first; ties keep file order."""
        query = set(terms(text))
        scored = [(self._score(e, query), -i, e) for i, e in enumerate(self.entries)]
        return [(s, e) for s, _, e in sorted(scored, reverse=True) if s > 0 and e not in exclude]

    def _score(self, entry: Entry, query: set[str]) -> float:
        # BM25 (k1=1.2, b=0.75) on the body, plus a flat bonus for heading/keyword hits.
        length_norm = 0.25 + 0.75 * entry.body_terms.total() / self._avg_len
        score = 0.0
        for term in query:
            tf = entry.body_terms[term]
            body = tf * 2.2 / (tf + 1.2 * length_norm)
            score += self._idf.get(term, 0.0) * (HEAD_WEIGHT * (term in entry.head_terms) + body)
        return score


def _parse_entry(heading: str, lines: list[str]) -> Entry | None:
    body = "\n".join(lines).strip().splitlines()
    keywords: tuple[str, ...] = ()
    if body and body[0].lower().startswith("keywords:"):
        keywords = tuple(k.strip() for k in body.pop(0).split(":", 1)[1].split(",") if k.strip())
    answer = "\n".join(body).strip()
    return Entry(heading, keywords, answer) if heading and answer else None


def _said_name(text: str) -> str | None:
    for match in NAME_RE.finditer(text):
        name = match.group(2).strip("'-")
        if name.lower() in NOT_NAMES | STOP_WORDS or name.lower().endswith("ing"):
            continue
        # "I'm Ana" vs "I'm moving house": only trust "I'm X" if capitalised or nothing follows.
        casual = not match.group(1).lower().startswith("my name")
        if not casual or name[0].isupper() or not text[match.end() :].strip(" .!"):
            return name[0].upper() + name[1:]
    return None


class OfflineEngine:
    """Engine answering from a `KnowledgeBase`, with the conversation history as memory."""

    def __init__(self, knowledge: KnowledgeBase, name: str = "offline") -> None:
        self.knowledge = knowledge
        self.name = name

    async def generate(self, request: EngineRequest) -> str:
        """Answer one turn; never raises for ordinary input."""
        return self.answer(request.user_text, _earlier_turns(request), request.summary)

    async def stream(self, request: EngineRequest) -> AsyncIterator[str]:
        """The answer of `generate` in word-sized chunks (each with its leading space)."""
        for chunk in re.findall(r"\s*\S+|\s+$", await self.generate(request)):
            yield chunk

    async def summarize(
        self, previous_summary: str, turns: Sequence[EngineTurn], max_chars: int
    ) -> str:
        """Extractive: one sentence per exchange, oldest dropped first to fit `max_chars`."""
        return extractive_summary(previous_summary, turns, max_chars)

    async def aclose(self) -> None:
        """Nothing to release."""

    def answer(self, text: str, history: Sequence[EngineTurn] = (), summary: str = "") -> str:
        """Synchronous core of `generate`, for callers outside an event loop.

        `summary` is the running summary of turns no longer in `history`; a name given
        there is still recalled.
        """
        if summary:
            history = [*_summarized_turns(summary), *history]
        kb, content = self.knowledge, [w for w in words(text) if w not in STOP_WORDS]
        if text == GREETING_INSTRUCTION:
            return self._greet_caller(history)
        if keys := KEYS_RE.fullmatch(text):
            return f"You pressed {keys[1]}. I can help with {kb.topics()}. What do you need?"
        if is_goodbye(text):
            return f"Thanks for contacting {kb.name}, goodbye!"
        if name := _said_name(text):
            entry = self._best(NAME_RE.sub("", text))
            more = entry.answer if entry else "How can I help you today?"
            return f"Nice to meet you, {name}! {more}"
        if RECALL_RE.search(text.lower().replace("\u2019", "'")):
            return self._recall(history)
        if content and all(w in GREETING_WORDS for w in content):
            return self._greet(history)
        if content and all(w in THANKS_WORDS | BYE_WORDS for w in content):
            if any(w in BYE_WORDS for w in content):
                return f"Thanks for contacting {kb.name}, goodbye!"
            return "You're welcome! Is there anything else I can help with?"
        if not content or FOLLOW_UP_RE.match(" ".join(words(text))):
            return self._follow_up(history)
        if entry := self._best(text):
            return entry.answer
        return f"Sorry, I don't know that one. I can help with {kb.topics()}. Could you rephrase?"

    def _best(self, text: str) -> Entry | None:
        for score, entry in self.knowledge.search(text)[:1]:
            # A heading/keyword hit is a deliberate match even in a tiny file where idf stays low.
            return entry if score >= MIN_SCORE or entry.head_terms & set(terms(text)) else None
        return None

    def _greet(self, history: Sequence[EngineTurn]) -> str:
        kb = self.knowledge
        offer = f"I can help with {kb.topics()}. What can I do for you?"
        if history:
            name, _ = _known_name(history)
            return f"Welcome back{', ' + name if name else ''}! {offer}"
        about = f" {kb.description}" if kb.description else ""
        return f"Hello, and welcome to {kb.name}!{about} {offer}"

    def _greet_caller(self, history: Sequence[EngineTurn]) -> str:
        """A call's first words: short, by name, and about last time when we know."""
        if not history:
            return f"Hello, thanks for calling {self.knowledge.name}! How can I help you today?"
        name, _ = _known_name(history)
        welcome = f"Welcome back{', ' + name if name else ''}!"
        if entry := self._last_topic(history):
            topic = entry.heading[0].lower() + entry.heading[1:]
            return f"{welcome} Are you calling about {topic} again, or something else?"
        return f"{welcome} How can I help you today?"

    def _last_topic(self, history: Sequence[EngineTurn]) -> Entry | None:
        """The knowledge entry the latest turns were about, if any."""
        for turn in list(reversed(history))[:8]:  # recent turns bound the cost
            if turn.role == "assistant":
                entry = next((e for e in self.knowledge.entries if _mentions(turn, e)), None)
            else:
                entry = self._best(turn.text)
            if entry is not None:
                return entry
        return None

    def _recall(self, history: Sequence[EngineTurn]) -> str:
        name, channel = _known_name(history)
        if name:
            return f"Of course! You told me on {channel} that your name is {name}."
        return "I don't know your name yet. Say \"my name is\" and I'll remember it everywhere."

    def _follow_up(self, history: Sequence[EngineTurn]) -> str:
        said = [t for t in history if t.role == "assistant"][-8:]  # recent turns bound the cost
        shown = [e for e in self.knowledge.entries if any(_mentions(t, e) for t in said)]
        current = next((e for e in shown if said and _mentions(said[-1], e)), None)
        if current is not None:
            query = " ".join((current.heading, *current.keywords))
            if related := self.knowledge.search(query, exclude=shown):
                return f"Something related that may help: {related[0][1].answer}"
        return f"Happy to help! I can tell you about {self.knowledge.topics()}."


def _mentions(turn: EngineTurn, entry: Entry) -> bool:
    # Channel shaping may reformat an answer, so compare words rather than exact text.
    body = set(words(entry.answer))
    return bool(body) and len(body & set(words(turn.text))) >= 0.8 * len(body)


def _known_name(history: Sequence[EngineTurn]) -> tuple[str | None, str]:
    """The latest name the customer gave, on any channel, and the channel it was given on."""
    for turn in reversed(history):
        if turn.role == "user" and (name := _said_name(turn.text)):
            return name, turn.channel
    return None, ""


def _summarized_turns(summary: str) -> list[EngineTurn]:
    """The customer's words kept in an extractive summary, as turns (for name recall)."""
    return [EngineTurn("user", said, channel) for channel, said in customer_quotes(summary)]


def _earlier_turns(request: EngineRequest) -> Sequence[EngineTurn]:
    """History before this turn, even if the caller already appended the current message."""
    history = request.history
    if history and history[-1].role == "user" and history[-1].text == request.user_text:
        return history[:-1]
    return history
