"""Voice through VoIPBin: signed events, `fetch`, the speaking and transcribe APIs.

Design: docs/voice.md.
"""
