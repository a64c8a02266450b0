"""Incoming media kept by the helpdesk: a customer's photo, voice note or document is downloaded from
Wazzup's store in the background and served from here, not only linked.

``enqueue`` (in the webhook's transaction) → ``download`` (a thread of the outbox worker, via ``fetch``)
→ ``resources`` (the copy's URL, an agent's retry) and ``fields`` (the message's media state and URL).
"""

from __future__ import annotations

from wazzup_plugin.routing import Route


def routes(helpdesk, state) -> list:
    from wazzup_plugin.media.resources import MediaResource, RetryResource
    from wazzup_plugin.media.urls import PATH

    return [
        Route("/api/chats/{chat_id:int}/wazzup24/messages/{message_id:int}/media/retry",
              RetryResource(helpdesk, state)),
        # Public, as the uploaded files: the unguessable token in the URL is the key.
        Route(PATH + "/{token}/{name}", MediaResource(helpdesk, state), public=True),
    ]
