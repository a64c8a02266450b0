"""Statuses and echoes that arrived before we knew their message (owned by the inbound flow)."""


def apply_parked(tx, state, wazzup_message_ids) -> None:
    """Apply parked statuses and echoes for messages whose Wazzup id just became known.

    The outbound flow calls this in the same transaction in which it records the Wazzup
    ``messageId`` of a send (201, or an echo settling a ``REPEATED_CRM_MESSAGE_ID``).
    """
