"""Which conversation an address belongs to when no link says otherwise.

Ingress and a channel running as its own service must agree on this, or one customer would
get two memories: both derive it here. A phone channel's addresses (E.164 numbers) share one
realm across every phone channel, so a caller and a texter with the same number are one
customer; any other channel's addresses are a realm of their own.
"""

from __future__ import annotations

import hashlib

from shared.contracts import ChannelProfile, IdentityRealm
from shared.contracts.profile import LEGACY_PROFILES

PHONE_REALM = "phone"


def default_realm(channel: str) -> IdentityRealm:
    """The identity realm of a channel that did not declare one: the channels from before
    profiles keep theirs, any other channel is a realm of its own."""
    legacy = LEGACY_PROFILES.get(channel, ChannelProfile(identity_realm=IdentityRealm.OWN))
    return legacy.identity_realm


def realm_name(channel: str, realm: IdentityRealm | None = None) -> str:
    """The namespace of `channel`'s addresses: "phone", or the channel's own name."""
    realm = realm or default_realm(channel)
    return PHONE_REALM if realm is IdentityRealm.PHONE else channel


def conversation_in(realm: str, address: str) -> str:
    """The stable conversation id of `address` within the namespace `realm`."""
    digest = hashlib.sha256(f"{realm}:{address}".encode()).hexdigest()[:24]
    return f"conv_{digest}"


def default_conversation_id(channel: str, address: str, realm: IdentityRealm | None = None) -> str:
    """The conversation an unlinked address belongs to (stable, no lookup needed).

    `address` must be canonical: E.164 for a phone channel.
    """
    return conversation_in(realm_name(channel, realm), address)
