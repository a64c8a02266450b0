"""Statuses and echoes that arrived before we knew their message (owned by the inbound flow)."""

from __future__ import annotations

from datetime import datetime, timezone

CLOCK_KEY = "clock"  # state.extras: the helpdesk's clock, kept by inbound.routes()


def now(state) -> datetime:
    clock = state.extras.get(CLOCK_KEY)
    return clock() if clock else datetime.now(timezone.utc)


def apply_parked(tx, state, wazzup_message_ids) -> None:
    """Apply parked statuses and echoes for messages whose Wazzup id just became known.

    The outbound flow calls this in the same transaction in which it records the Wazzup
    ``messageId`` of a send (201, or an echo settling a ``REPEATED_CRM_MESSAGE_ID``).
    Statuses parked for those ids are applied through the status machine; an echo parked under
    one of those ids is merged into the send (no second copy). Echoes parked in the same chats
    that turned out not to be our send become outgoing messages once no send is in flight there.
    Changed rows are stamped with ``tx.change_seq`` and reported through ``tx.touched``.
    """
    from wazzup_plugin.inbound.store import Writer

    writer = Writer(tx, state, now(state))
    writer.apply_parked(wazzup_message_ids)
    writer.finish()


def send_settled(tx, state, chat_ids) -> None:
    """A send in these chats ended without a Wazzup id (failed, unknown, or accepted as a repeat).

    The outbound flow calls this in the transaction that records it. Echoes parked in those chats
    while the send was in flight are looked at again: one with the send's content settles it (see
    ``Writer._adopt_echoes_of_sends_without_id``), the others become outgoing messages once no
    other send is in flight there.
    """
    from wazzup_plugin.inbound.store import Writer

    writer = Writer(tx, state, now(state))
    writer.lock()
    writer.release_echoes(set(chat_ids))
    writer.finish()
