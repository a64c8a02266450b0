"""Inbound: the Wazzup24 webhook turns deliveries into chats, messages and statuses."""


def routes(helpdesk, state) -> list:
    """Routes of the inbound flow (the webhook)."""
    return []


def add_commands(group) -> None:
    """CLI commands of the inbound flow (simulate-incoming)."""
