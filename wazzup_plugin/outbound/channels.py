"""Which Wazzup channel a message goes out through.

The chat's own channel (the one its messages came in on); else ``WAZZUP24_CHANNEL_ID``; else the
only active WhatsApp channel of the account; else a clear error naming the channels found.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from wazzup_plugin.client import WazzupError
from wazzup_plugin.store_common import upsert
from wazzup_plugin.text import is_id

log = logging.getLogger(__name__)

WHATSAPP_TRANSPORTS = ("whatsapp", "wapi")
# How often the outbox worker refreshes the stored channel list (a new channel, a changed transport).
CHANNELS_EVERY = timedelta(minutes=10)


class ChannelSelectionError(Exception):
    """No channel can be chosen; the message says why and lists what was found."""

    code = "CHANNEL_NOT_SELECTED"


class ChannelNeedsAPerson(ChannelSelectionError):
    """The chat's own channel is known to be in a state only a person can fix: nothing is sent
    (and nothing retried) until someone does; the message names the channel and what to do."""

    code = "CHANNEL_NEEDS_ATTENTION"


# Channel states only a person can fix (reference §2 and §5.4; compared in lower case), and what to do.
# The others (init, qr/qridle, phoneUnavailable, waitForPhone, waitForPassword, onModeration...) pass by
# themselves or soon: a send waits for them as before.
NEEDS_A_PERSON = {
    "unauthorized": "it is signed out of the messenger: sign it in again in Wazzup's channel settings",
    "disabled": "it is switched off or no longer in the Wazzup subscription: switch it on in Wazzup",
    "notenoughmoney": "its Wazzup subscription is not paid: pay for it in Wazzup",
    "blocked": "the messenger blocked it: see the channel in Wazzup",
    "rejected": "the WhatsApp Business channel was rejected: see the channel in Wazzup",
    "foreignphone": "its QR code was scanned with another phone number: scan it again with the channel's own "
                    "phone in Wazzup",
    "openelsewhere": "it is signed in to another Wazzup account: connect it to this account again in Wazzup",
}
TRANSPORT_NAMES = {"whatsapp": "WhatsApp", "wapi": "WhatsApp Business", "tgapi": "Telegram", "telegram": "Telegram bot",
                   "instagram": "Instagram", "vk": "VK", "avito": "Avito", "viber": "Viber", "max": "MAX"}


def needs_a_person(state) -> bool:
    return str(state or "").lower() in NEEDS_A_PERSON


def channel_name(channel_id: str, transport: str | None, plain_id: str | None) -> str:
    """``the Telegram channel 79865784457``: how agents know a channel."""
    messenger = TRANSPORT_NAMES.get(str(transport or "").lower(), "Wazzup")
    return f"the {messenger} channel {plain_id or channel_id}"


def what_to_do(channel_id: str, transport: str | None, plain_id: str | None, state: str) -> str:
    """A channel in a state only a person can fix, and what to do, in a sentence."""
    name = channel_name(channel_id, transport, plain_id)
    return (f"{name[0].upper()}{name[1:]} is {state!r} at Wazzup, so nothing can be sent through it: "
            f"{NEEDS_A_PERSON[str(state).lower()]}.")


@dataclass(frozen=True)
class SelectedChannel:
    channel_id: str
    source: str  # "chat", "setting" or "account"
    transport: str | None = None
    state: str | None = None


def is_active(channel: dict) -> bool:
    return str(channel.get("state") or "").lower() == "active"


def describe(channels: list[dict]) -> str:
    if not channels:
        return "the account has no channels"
    return "; ".join(f"{c.get('channelId')} ({c.get('transport')}, {c.get('plainId') or '-'}, {c.get('state')})"
                     for c in channels)


def select_channel(chat_channel_id: str | None, setting_channel_id: str | None, list_channels) -> SelectedChannel:
    """``list_channels()`` is called only when neither the chat nor the settings name a channel."""
    if chat_channel_id:
        return SelectedChannel(chat_channel_id, "chat")
    if setting_channel_id:
        return SelectedChannel(setting_channel_id, "setting")
    channels = list_channels()
    candidates = [c for c in channels
                  if str(c.get("transport") or "").lower() in WHATSAPP_TRANSPORTS and is_active(c)]
    if len(candidates) == 1:
        c = candidates[0]
        return SelectedChannel(str(c["channelId"]), "account", c.get("transport"), c.get("state"))
    if not candidates:
        raise ChannelSelectionError(f"No active WhatsApp channel to send through ({describe(channels)}). "
                                    "Connect one in Wazzup, or set WAZZUP24_CHANNEL_ID.")
    raise ChannelSelectionError(f"Several active WhatsApp channels ({describe(candidates)}): "
                                "set WAZZUP24_CHANNEL_ID to the one to send through.")


def _newer_and_different(t, ex):
    """A listed channel changes the stored row only when it says something new: ``updated_at`` then
    tells when the state last changed, and a check that finds nothing new writes nothing."""
    return sa.and_(t.c.updated_at < ex.updated_at, sa.or_(
        t.c.state.is_distinct_from(ex.state),
        sa.and_(ex.transport.is_not(None), t.c.transport.is_distinct_from(ex.transport)),
        sa.and_(ex.plain_id.is_not(None), t.c.plain_id.is_distinct_from(ex.plain_id))))


def remember_channels(ctx, channels: list[dict]) -> None:
    """Keep what Wazzup's channel list says of each channel (transport, number, state): the chat
    info shows it. A state a webhook reported at the same moment or later is not overwritten, and a
    value the list leaves out does not erase a known one."""
    def text(value, size: int) -> str | None:
        return value if is_id(value, size) else None

    now = ctx.clock()
    rows = {}
    for c in channels:
        channel_id, state = text(c.get("channelId"), 64), text(c.get("state"), 64)
        if channel_id and state:
            rows[channel_id] = {"channel_id": channel_id, "state": state, "transport": text(c.get("transport"), 32),
                                "plain_id": text(c.get("plainId"), 200), "tier": None, "updated_at": now}
    if not rows:
        return
    with ctx.helpdesk.db.write() as tx:
        upsert(tx.conn, ctx.state.tables["channels"], [rows[k] for k in sorted(rows)], key=["channel_id"],
               update=["state", "transport", "plain_id", "updated_at"],
               where=_newer_and_different,
               keep_when_null=["transport", "plain_id"])


def refresh_channels(ctx) -> bool:
    """Store what Wazzup's channel list says now (the outbox worker: at start and every
    :data:`CHANNELS_EVERY`), so each chat's messenger, and with it a WhatsApp Business chat's 24-hour
    window, is known before anyone opens the connection report. False when Wazzup could not be asked."""
    try:
        remember_channels(ctx, ctx.client.channels())
    except WazzupError as exc:
        log.warning("Wazzup24 channel list not refreshed: %s", exc)
        return False
    return True
