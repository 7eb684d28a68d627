"""Identity resolution: which conversation an address on a channel belongs to.

Voice and SMS share the customer's E.164 number, so both land in the same conversation by
default; phone addresses are normalized first, so every spelling of a number is one customer.
A web chat session is its own anonymous conversation until a verified linking step
(`services/ingress/linking/`) writes an explicit mapping; explicit mappings win over the
defaults. Rules and the linking flow: docs/identity.md.
"""

from __future__ import annotations

import re

import phonenumbers
from redis.asyncio import Redis

from services.channels.sdk.identity import (
    conversation_in,
    default_conversation_id,
    default_realm,
    realm_name,
)
from shared.contracts import Channel, IdentityRealm

__all__ = ["default_conversation_id"]  # re-exported: ingress's callers ask identity for it


DEFAULT_REGION = "US"
_MAX_RAW_PHONE = 64
# A URI scheme: `whatsapp:`, `messenger:`, `sip:`... (`tel:` is a phone number's own scheme).
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]{0,31}):")


class InvalidPhoneNumber(ValueError):
    """`raw` is not a phone number we can turn into E.164. The message says why, without it."""


def is_other_channel_address(raw: str) -> bool:
    """True for an address of another channel, such as Twilio's `whatsapp:+14155550100`.

    libphonenumber reads the number out of it and drops the prefix, so without this check a
    WhatsApp customer would be answered by SMS, on a channel they never used.
    """
    scheme = _SCHEME.match(raw)
    return scheme is not None and scheme.group(1).lower() != "tel"


def normalize_phone(raw: str, default_region: str, *, require_valid: bool = True) -> str:
    """`raw` as E.164 (`+14155550100`); numbers without `+<country>` use `default_region`.

    `require_valid` checks the number against libphonenumber's range metadata (catches typos in
    what people type). Numbers that providers hand us were already routed by a carrier, so the
    resolver only asks for a *possible* number: stale metadata must not lock a customer out.
    """
    if len(raw) > _MAX_RAW_PHONE:
        raise InvalidPhoneNumber(f"a phone number has at most {_MAX_RAW_PHONE} characters")
    if is_other_channel_address(raw):
        raise InvalidPhoneNumber("not a phone number: an address of another channel")
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber("not a phone number") from None
    if number.extension:
        raise InvalidPhoneNumber("phone numbers with an extension are not supported")
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhoneNumber("not a possible phone number (wrong length or country code)")
    if require_valid and not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


SIP_REALM = "sip"
"""Callers on a SIP softphone: no number, their `sip:user@host` is who they are."""


def _key_in(prefix: str, realm: str, address: str) -> str:
    return f"{prefix}:identity:{realm}:{address}"


def identity_key(
    prefix: str, channel: str, address: str, realm: IdentityRealm | None = None
) -> str:
    """Redis key of the explicit mapping of a canonical address to a conversation id."""
    return _key_in(prefix, realm_name(channel, realm), address)


class IdentityResolver:
    """Maps (channel, address) to a conversation id, honouring explicit links in Redis.

    Which realm a channel's addresses live in comes from its profile: ingress declares each
    channel it mounts (`declare`). A phone channel's addresses are E.164 numbers shared with
    every other phone channel; any other channel's addresses are its own.
    """

    def __init__(self, redis: Redis, prefix: str, default_region: str = DEFAULT_REGION) -> None:
        self._redis = redis
        self._prefix = prefix
        self.default_region = default_region
        self._realms: dict[str, IdentityRealm] = {}

    def declare(self, channel: str, realm: IdentityRealm) -> None:
        """Record the identity realm of `channel` (from its profile)."""
        self._realms[channel] = realm

    def realm(self, channel: str) -> IdentityRealm:
        """The identity realm of `channel`."""
        return self._realms.get(channel) or default_realm(channel)

    def canonical_address(self, channel: str, address: str) -> str:
        """The address as identity knows it: E.164 on a phone channel, unchanged otherwise.

        Raises `InvalidPhoneNumber` for a phone channel address that is not a phone number;
        channel adapters answer that with a 4xx rather than inventing a conversation.
        """
        if self.realm(channel) is IdentityRealm.PHONE:
            return normalize_phone(address, self.default_region, require_valid=False)
        return address

    def _key(self, channel: str, canonical: str) -> str:
        return identity_key(self._prefix, channel, canonical, self.realm(channel))

    async def linked_conversation(self, channel: str, address: str) -> str | None:
        """The explicitly mapped conversation of this address, if a link wrote one."""
        linked = await self._redis.get(self._key(channel, self.canonical_address(channel, address)))
        return str(linked) if linked else None

    async def resolve_caller(
        self, target: str, call_id: str, channel: str = Channel.VOICE
    ) -> tuple[str, str]:
        """`(canonical caller, conversation id)` of someone on a call on a phone channel.

        A phone number joins the shared phone realm (the caller's SMS memory and theirs are
        one). A SIP caller (a softphone dialling a Direct Hash) has no number: its
        `user@host` target is its own identity, until a verified link says otherwise.
        Anything else (a withheld number: "anonymous", "unknown", empty) identifies nobody,
        so the call gets a conversation of its own: callers must never share a memory.
        """
        try:
            number = normalize_phone(target, self.default_region, require_valid=False)
        except InvalidPhoneNumber:
            sip_target = target.strip().removeprefix("sip:").lower()
            if "@" not in sip_target or sip_target.startswith(("anonymous@", "unknown@")):
                return "", f"conv_call_{call_id}"
            caller = "sip:" + sip_target
            linked = await self._redis.get(_key_in(self._prefix, SIP_REALM, caller))
            return caller, str(linked) if linked else conversation_in(SIP_REALM, caller)
        return number, await self.resolve(channel, number)

    async def resolve(self, channel: str, address: str) -> str:
        """The conversation id to key this customer's events by."""
        canonical = self.canonical_address(channel, address)
        linked = await self._redis.get(self._key(channel, canonical))
        realm = self.realm(channel)
        return str(linked) if linked else default_conversation_id(channel, canonical, realm)
