"""A channel that exists only in the tests: "echo", a plain-text channel with its own users.

It is built like a built-in channel (one folder: `profile.py`, `inbound.py`, `outbound.py`,
`channel.py`) and registered by the tests alone, with `create_app(settings, channels=(*CHANNELS,
ECHO))`: the proof that a channel needs no edit to the brain, the contracts or the services.
"""
