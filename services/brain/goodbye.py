"""Did the caller just say goodbye? A small, conservative matcher for ending voice calls.

A false "yes" hangs up on a customer mid-conversation, a false "no" only costs the model's
own goodbye (it may still end the call with the hangup marker), so this says yes only when
the whole utterance is a farewell plus closing pleasantries:

- "bye", "goodbye", "bye bye", "ok thanks, bye", "that's all, thank you, goodbye" → yes;
- "I want to say goodbye to my old plan", "bye the way", "goodbye?", "thank you" → no.

Every word must be a farewell ("bye", "see you", "take care", "good night"...) or a closing
word ("ok", "thanks", "that's all", "have a nice day"...), with at least one farewell, and
there is no question mark. Anything else (a request, a negation, a name) means the caller is
still talking to us.
"""

from __future__ import annotations

import re

_FAREWELL_WORDS = frozenset({"bye", "byebye", "goodbye", "farewell", "goodnight", "cya"})
_FAREWELL_PHRASES = re.compile(r"\b(good bye|see (you|ya)|take care|good night|talk soon)\b")
_CLOSING_WORDS = frozenset(
    re.findall(
        r"[a-z]+",
        """ok okay alright right great perfect cool fine good lovely wonderful awesome
        excellent thanks thank thx you too so much very lot a again for your help all thats
        it is that then now well oh and yes yeah yep no nope nothing else im were done have
        nice day weekend evening later cheers see ya take care night talk soon sir maam mate""",
    )
)
_MAX_WORDS = 14
"""Longer utterances are real sentences, not a sign-off."""


def is_goodbye(text: str) -> bool:
    """True when `text` (a final transcript) is only the caller taking their leave."""
    text = text.lower().replace("\u2019", "'")
    if "?" in text:
        return False
    words = re.findall(r"[a-z]+", text.replace("'", ""))
    if not words or len(words) > _MAX_WORDS:
        return False
    said_farewell = any(w in _FAREWELL_WORDS for w in words) or bool(
        _FAREWELL_PHRASES.search(" ".join(words))
    )
    return said_farewell and all(w in _CLOSING_WORDS | _FAREWELL_WORDS for w in words)
