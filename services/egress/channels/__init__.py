"""The registry of built-in output channels."""

from __future__ import annotations

from services.egress.channels.base import OutputChannel
from services.egress.channels.sms import SmsOutput
from services.egress.channels.voice import VoiceOutput
from services.egress.channels.webchat import WebChatOutput

__all__ = ["OutputChannel", "SmsOutput", "VoiceOutput", "WebChatOutput"]
