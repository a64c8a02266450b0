"""The message status machine (DESIGN.md §4a): statuses only move forward.

Late, repeated or reordered webhooks are normal; applying them through :func:`can_move` makes
their order irrelevant: a stored status is never downgraded.
"""

from __future__ import annotations

# Allowed moves; anything else is a late or repeated report and is ignored.
TRANSITIONS: dict[str, frozenset[str]] = {
    "inbound": frozenset(),
    "queued": frozenset({"accepted", "sent", "delivered", "read", "failed", "unknown"}),
    "accepted": frozenset({"sent", "delivered", "read", "failed"}),
    "sent": frozenset({"delivered", "read", "failed"}),
    "delivered": frozenset({"read"}),
    "read": frozenset(),
    "failed": frozenset(),
    "unknown": frozenset({"accepted", "sent", "delivered", "read", "failed"}),
}

# Wazzup's words for statuses, mapped to ours; "edited" is an event, not a delivery status.
FROM_WAZZUP = {"sent": "sent", "delivered": "delivered", "read": "read", "error": "failed", "inbound": "inbound"}

# The column holding each status's timestamp on the host's messages table.
TIMESTAMP_COLUMN = {s: f"{s}_at" for s in ("queued", "accepted", "sent", "delivered", "read", "failed", "unknown")}


def can_move(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def resolve(current: str, reported: list[str]) -> str:
    """The status after applying several reports in any order."""
    status = current
    changed = True
    while changed:
        changed = False
        for new in reported:
            if can_move(status, new):
                status, changed = new, True
    return status
