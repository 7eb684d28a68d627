"""Every customer channel, one folder each, plus the SDK they are built on.

- `sdk/`: the contract a channel implements (`ChannelPlugin`, inbound and outbound adapters,
  the `publish` helper) and the runner for a channel that lives in its own process.
- `webchat/`, `sms/` (Twilio), `voipbin/` (voice): the built-in channels. Each folder holds
  the inbound adapter (webhooks, sockets), the outbound adapter (delivery), its state in
  Redis, its provider client, its settings, its fake provider and its golden payloads.
- `registry.py`: the one list of channels ingress mounts and egress subscribes.

How to add one: docs/channels.md.
"""
