"""Outbound: sending through Wazzup24, the outbox worker, connection status and chat info."""

from __future__ import annotations

from wazzup_plugin.routing import Route, Worker


def routes(helpdesk, state) -> list:
    """Routes of the outbound flow (send, resend, templates, connection, info, files, starting a chat)."""
    from wazzup_plugin.outbound.connection import ConnectionResource
    from wazzup_plugin.outbound.files import PublicFileResource, UploadResource
    from wazzup_plugin.outbound.stored_files import PATH
    from wazzup_plugin.outbound.info import InfoResource
    from wazzup_plugin.outbound.send import ResendResource, SendResource
    from wazzup_plugin.outbound.start_chat import StartChatResource
    from wazzup_plugin.outbound.templates import TemplatesResource

    send = SendResource(helpdesk, state)
    return [
        Route("/api/chats/{chat_id:int}/wazzup24/send", send),
        # The same answer as a send for a chat that is not there or not Wazzup's (404, 409).
        Route("/api/chats/{chat_id:int}/wazzup24/templates", TemplatesResource(helpdesk, state, send._chat)),
        Route("/api/chats/{chat_id:int}/wazzup24/messages/{message_id:int}/resend", ResendResource(helpdesk, state)),
        Route("/api/chats/{chat_id:int}/wazzup24/info", InfoResource(helpdesk, state)),
        Route("/api/chats/{chat_id:int}/wazzup24/files", UploadResource(helpdesk, state)),
        # Public: Wazzup downloads the file from here; the unguessable token in the URL is the key.
        Route(PATH + "/{token}/{name}", PublicFileResource(helpdesk, state), public=True),
        Route("/api/wazzup24/connection", ConnectionResource(helpdesk, state)),
        Route("/api/wazzup24/chats", StartChatResource(helpdesk, state)),
    ]


def workers(helpdesk) -> list:
    """Background workers ``serve`` runs (the outbox worker)."""
    return [Worker("wazzup24-outbox", ("wazzup24", "worker"))]


def add_commands(group) -> None:
    """CLI commands of the outbound flow (worker, test-connection, channels, set-webhook)."""
    from wazzup_plugin.outbound.cli import add_commands as add

    add(group)
