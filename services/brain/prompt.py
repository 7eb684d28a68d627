"""The one system prompt every channel shares, with a short per-channel style hint."""

from __future__ import annotations

BASE_PROMPT = (
    "You are the customer assistant of this business. You talk to the same customer across "
    "web chat, SMS and phone calls and you remember earlier turns on any channel. Be helpful, "
    "brief and honest; if you do not know, say so and offer a human."
)

_STYLE = {
    "chat": "This turn is in web chat: short paragraphs; simple markdown is fine.",
    "sms": "This turn is by SMS: plain text, no markdown, one or two short sentences.",
    "voice": "This turn is spoken on a call: one or two short sentences, no lists, no URLs.",
}


def system_prompt(channel: str, summary: str = "") -> str:
    """The system prompt for a turn on `channel`, with the running summary if any."""
    parts = [BASE_PROMPT, _STYLE.get(channel, "")]
    if summary:
        parts.append(f"Summary of the earlier conversation: {summary}")
    return "\n\n".join(part for part in parts if part)
