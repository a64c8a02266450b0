"""The kept copy of a customer's media: its public URL (the token is the key) and an agent's retry.

``GET``/``HEAD /wazzup24/media/{token}/{name}`` serves the copy as the uploaded files are served
(``wazzup_plugin.serving``: nosniff, a sandboxing CSP, inline only for media and PDF, the SHA-256 as
ETag, one byte range answered 206): the agent UI shows it from the helpdesk's own origin, whatever became
of Wazzup's link.
``POST /api/chats/{chat}/wazzup24/messages/{message}/media/retry`` makes a failed download due now.
"""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.media.download import retry_failed
from wazzup_plugin.media.tables import EXPIRED, FAILED, STORED
from wazzup_plugin.media.urls import served_name
from wazzup_plugin.outbound.http import Problem, answers_problems, error_response
from wazzup_plugin.outbound.stored_files import url_name
from wazzup_plugin.serving import TOKEN, not_found, serve_stored, served_responses, slice_params, stored_bytes
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
        row = self._find(token)
        if row is None or url_name(served_name(row.name)) != name:
            raise not_found()
        if row.state == EXPIRED:
            raise _expired()

        def load_data(offset=0, length=None):
            data = self._bytes(token, row.sha256, offset, length)
            if data is None and getattr(self._find(token), "state", None) == EXPIRED:
                raise _expired()  # emptied by retention in between
            return data

        serve_stored(req, resp, name=served_name(row.name), content_type=row.content_type, size=row.size,
                     sha256=row.sha256, load_data=load_data)

    def _find(self, token: str):
        """The stored (or expired) copy of ``token``, not its bytes (one still downloading, or failed, is not found)."""
        if not TOKEN.fullmatch(token):
            return None
        t = self.state.tables["media"]
        with self.helpdesk.db.read() as conn:
            return conn.execute(built(t, ("public_media", False), lambda: sa.select(
                t.c.name, t.c.content_type, t.c.size, t.c.sha256, t.c.state).where(
                t.c.token == sa.bindparam("b_token", type_=t.c.token.type), t.c.state.in_((STORED, EXPIRED)))),
                {"b_token": token}).first()

    def _bytes(self, token: str, sha256: str, offset: int, length: int | None) -> bytes | None:
        """``length`` bytes from ``offset`` (all without) of the copy :meth:`_find` saw; None if it is gone.
        That copy's checksum picks the row: an edit bringing new media keeps the token, and bytes of the new
        file must not go out under the old one's ETag and Content-Range."""
        t = self.state.tables["media"]
        sliced = length is not None
        with self.helpdesk.db.read() as conn:
            found = conn.execute(built(t, ("public_media_bytes", sliced), lambda: sa.select(
                stored_bytes(t.c.data, sliced)).where(
                t.c.token == sa.bindparam("b_token", type_=t.c.token.type), t.c.state == STORED,
                t.c.sha256 == sa.bindparam("b_sha256", type_=t.c.sha256.type))),
                {"b_token": token, "b_sha256": sha256, **slice_params(offset, length)}).first()
        return None if found is None else found.data


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
