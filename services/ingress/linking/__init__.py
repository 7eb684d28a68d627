"""Verified linking of a web chat session to a phone number (docs/identity.md).

`codes` (pure: codes, digests, texts, ids), `store` (Redis state), `service` (the flow, no
framework), `delivery` (the code's SMS on the reply topic), `routes` (HTTP).
"""
