"""The kept copy of a customer's media: its public URL (the token is the key) and an agent's retry.

``GET``/``HEAD /wazzup24/media/{token}/{name}`` serves the copy as the uploaded files are served
(``wazzup_plugin.serving``: nosniff, a sandboxing CSP, inline only for media and PDF, the SHA-256 as
ETag): the agent UI shows it from the helpdesk's own origin, whatever became of Wazzup's link.
``POST /api/chats/{chat}/wazzup24/messages/{message}/media/retry`` makes a failed download due now.
"""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.media.download import retry_failed
from wazzup_plugin.media.tables import EXPIRED, FAILED, STORED
from wazzup_plugin.media.urls import served_name
from wazzup_plugin.outbound.http import Problem, answers_problems, error_response
from wazzup_plugin.outbound.stored_files import url_name
from wazzup_plugin.serving import TOKEN, not_found, serve_stored, served_responses
from wazzup_plugin.store_common import built



class _Resource:
    def __init__(self, helpdesk, state):
        self.helpdesk = helpdesk
        self.state = state


class MediaResource(_Resource):
    """``GET``/``HEAD /wazzup24/media/{token}/{name}``: public; the unguessable token is the key."""

    openapi = {"get": {
        "summary": "A customer's media as the helpdesk keeps it (public: the token in the URL is the key)",
        "responses": {**served_responses("no such file, or not downloaded yet"),
                      "410": error_response("`wazzup_media_expired`: deleted after the retention period "
                                            "(WAZZUP24_MEDIA_RETENTION_DAYS)")},
    }}

    @answers_problems
    def on_get(self, req, resp, token, name):
        row = self._find(token, with_data=False)
        if row is None or url_name(served_name(row.name)) != name:
            raise not_found()
        if row.state == EXPIRED:
            raise _expired()

        def load_data():
            with_data = self._find(token, with_data=True)
            if with_data is not None and with_data.state == EXPIRED:  # emptied by retention in between
                raise _expired()
            return None if with_data is None else with_data.data

        serve_stored(req, resp, name=served_name(row.name), content_type=row.content_type, size=row.size,
                     sha256=row.sha256, load_data=load_data)

    def _find(self, token: str, with_data: bool):
        """The stored (or expired) copy of ``token`` (a row still downloading, or failed, is not found)."""
        if not TOKEN.fullmatch(token):
            return None
        t = self.state.tables["media"]
        columns = [t.c.name, t.c.content_type, t.c.size, t.c.sha256, t.c.state] + ([t.c.data] if with_data else [])
        with self.helpdesk.db.read() as conn:
            return conn.execute(built(t, ("public_media", with_data), lambda: sa.select(*columns).where(
                t.c.token == sa.bindparam("b_token", type_=t.c.token.type), t.c.state.in_((STORED, EXPIRED)))),
                {"b_token": token}).first()


def _expired() -> Problem:
    # A copy that was kept and then emptied: whoever follows the message's link (an agent, an
    # integrator) learns that the helpdesk no longer keeps it, not that it never existed.
    return Problem(410, "wazzup_media_expired", "This file is no longer available: the helpdesk deleted its copy "
                                                "after the retention period (WAZZUP24_MEDIA_RETENTION_DAYS).")


class RetryResource(_Resource):
    """``POST /api/chats/{chat_id}/wazzup24/messages/{message_id}/media/retry``: a failed download, again."""

    openapi = {"post": {
        "summary": "Download a customer's media again after it failed",
        "description": "Makes the failed download due now; the outbox worker downloads it. Only a failed one "
                       "(`wazzup_media_state` \"failed\"): a file too big or on a host not allowed fails again.",
        "responses": {
            "202": {"description": "queued", "content": {"application/json": {"schema": {
                "type": "object", "required": ["message_id", "state"],
                "properties": {"message_id": {"type": "integer"}, "state": {"type": "string"}}}}}},
            "404": error_response("`chat_not_found`: no such chat; `media_not_found`: no such message in the "
                                  "chat, or it has no media kept by the helpdesk"),
            "409": error_response("`not_retryable`: the media is stored, still downloading, or cannot be "
                                  "downloaded (too big, a host not allowed)"),
        },
    }}

    @answers_problems
    def on_post(self, req, resp, chat_id, message_id):
        chats = self.helpdesk.tables.chats
        with self.helpdesk.db.read() as conn:
            if conn.execute(sa.select(chats.c.id).where(chats.c.id == chat_id)).first() is None:
                raise Problem(404, "chat_not_found", f"There is no chat {chat_id}.")
        before = retry_failed(self.helpdesk.db, self.state, message_id, chat_id, self.helpdesk.clock())
        if before is None:
            raise Problem(404, "media_not_found",
                          f"Message {message_id} of chat {chat_id} has no media kept by the helpdesk.")
        if before != FAILED:
            raise Problem(409, "not_retryable", f"Only a failed download can be retried; this one is {before!r}.",
                          state=before)
        resp.status = "202 Accepted"
        resp.media = {"message_id": message_id, "state": "pending"}
