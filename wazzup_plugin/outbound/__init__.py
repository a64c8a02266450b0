"""Outbound: sending through Wazzup24, the outbox worker, connection status and chat info."""


def routes(helpdesk, state) -> list:
    """Routes of the outbound flow (send, resend, connection, info)."""
    return []


def workers(helpdesk) -> list:
    """Background workers ``serve`` runs (the outbox worker)."""
    return []


def add_commands(group) -> None:
    """CLI commands of the outbound flow (worker, test-connection, channels, set-webhook)."""
