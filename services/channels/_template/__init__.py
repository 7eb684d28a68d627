"""The Template channel: one folder, one registry line (docs/channels.md).

- `profile.py`: the channel's wire name and `ChannelProfile` (how the brain treats it);
- `settings.py`: its own settings (`TEMPLATE_*` environment variables);
- `inbound.py`: the provider's webhook, verified before anything else, published through
  `ChannelPublisher`;
- `outbound.py`: delivery of the brain's replies to the provider;
- `channel.py`: the `ChannelPlugin` the registry lists.

What is left to do: README.md.
"""
