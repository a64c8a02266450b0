"""Outbound: sending through Wazzup24, the outbox worker, connection status and chat info."""

from __future__ import annotations

from wazzup_plugin.routing import Route, Worker


def routes(helpdesk, state) -> list:
    """Routes of the outbound flow (send, resend, connection, info)."""
    from wazzup_plugin.outbound.connection import ConnectionResource
    from wazzup_plugin.outbound.info import InfoResource
    from wazzup_plugin.outbound.send import ResendResource, SendResource

    return [
        Route("/api/chats/{chat_id:int}/wazzup24/send", SendResource(helpdesk, state)),
        Route("/api/chats/{chat_id:int}/wazzup24/messages/{message_id:int}/resend", ResendResource(helpdesk, state)),
        Route("/api/chats/{chat_id:int}/wazzup24/info", InfoResource(helpdesk, state)),
        Route("/api/wazzup24/connection", ConnectionResource(helpdesk, state)),
    ]


def workers(helpdesk) -> list:
    """Background workers ``serve`` runs (the outbox worker)."""
    return [Worker("wazzup24-outbox", ("wazzup24", "worker"))]


def add_commands(group) -> None:
    """CLI commands of the outbound flow (worker, test-connection, channels, set-webhook)."""
    from wazzup_plugin.outbound.cli import add_commands as add

    add(group)
