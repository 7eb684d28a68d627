"""Voice through VAPI: server-URL events, a custom-LLM stream, Live Call Control.

Design: docs/vapi.md. Wire format: ../shared/providers.md §3.
"""
