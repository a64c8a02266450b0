"""Files agents attach from their computer: the upload route and the public route Wazzup downloads from.

Wazzup takes a file only as a public URL that downloads without redirects, and fetches it at once
(reference/wazzup-api-v3.md §3.1). So an agent uploads the file here first
(``POST /api/chats/{chat}/wazzup24/files``, which sends nothing), then sends it with the send route's
``file_id``; the message's ``contentUri`` is the file's public URL,
``{WAZZUP24_PUBLIC_URL}/wazzup24/files/{token}/{name}``, whose unguessable token is the only key to it.

That URL is served from the helpdesk's own origin, so what it serves must never run there: only the
types of :mod:`file_rules` are taken (no HTML, SVG or XML), and every answer carries ``nosniff``, a
sandboxing Content-Security-Policy and a Content-Disposition that downloads anything but media and PDF.
"""

from __future__ import annotations

import hashlib
import secrets

import falcon
import sqlalchemy as sa
from falcon.util.mediatypes import parse_header

from wazzup_plugin.outbound import file_rules as rules
from wazzup_plugin.outbound.file_quota import check_quota
from wazzup_plugin.outbound.http import Problem, answers_problems, error_response
from wazzup_plugin.outbound.send import _SendBase
from wazzup_plugin.outbound.stored_files import not_configured, public_url, url_name
from wazzup_plugin.serving import TOKEN, not_found, serve_stored, served_responses, slice_params, stored_bytes
from wazzup_plugin.settings import PUBLIC_URL
from wazzup_plugin.store_common import built

FORM_OVERHEAD = 64 * 1024   # the multipart boundaries and part headers around the file

_FORM = falcon.media.MultipartFormHandler()
_FORM.parse_options.max_body_part_count = 8


def form_filename(raw: str | None) -> str:
    """A form part's file name as the agent's file is called: browsers (the HTML standard) send ``"``,
    CR and LF in it as ``%22``, ``%0D`` and ``%0A``, and Falcon hands the name on as sent."""
    return (raw or "").replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


def _refused(status: int, code: str, message: str) -> Problem:
    return Problem(status, code, message, fields={"file": [message]})


def _check_form(req) -> None:
    """415 for a body that is not a multipart form (after the chat: no such chat is 404 whatever the body)."""
    media_type, _ = parse_header(req.content_type or "")
    if media_type.lower() != "multipart/form-data":
        raise Problem(415, "unsupported_media_type",
                      "Upload the file as multipart/form-data with one part named 'file'.")


def _read_upload(req, limit_for) -> tuple[str, rules.FileType, bytes]:
    """The form's ``file`` part: its clean name, its type and its bytes, refused clearly otherwise.
    ``limit_for(kind)`` gives the largest size the chat takes for a kind of file, and why."""
    missing = Problem(422, "invalid_body", "The form has no part named 'file'.", fields={"file": ["missing"]})
    if not req.content_length:
        raise missing
    upload = None
    try:
        # Read to the form's end, past the file: a body cut off after it fails only at the next part.
        for part in _FORM.deserialize(req.bounded_stream, req.content_type, req.content_length):
            if part.name != "file" or upload is not None:
                continue  # the parser skips what is not read
            name = rules.clean_name(form_filename(part.filename))
            kind = rules.file_type(name)
            if kind is None or rules.is_active(part.content_type):
                ext = rules.extension_of(name)
                what = f".{ext} files" if ext else "a file without an extension"
                raise _refused(415, "unsupported_file_type",
                               f"Wazzup24 cannot send {what}; send one of: {rules.ALLOWED}.")
            limit, why = limit_for(kind.kind)
            data = part.stream.read(limit + 1)
            if len(data) > limit:
                raise _refused(413, "file_too_large",
                               f"The file is larger than {rules.human_size(limit)} ({why}); nothing was stored.")
            if not data:
                raise _refused(422, "empty_file", "The file is empty; nothing was stored.")
            upload = name, kind, data
    # Falcon's MediaMalformedError and invalid-header errors are 400s; part headers must be UTF-8.
    except (falcon.HTTPBadRequest, UnicodeDecodeError):
        raise Problem(400, "invalid_body", "The multipart/form-data body is malformed or incomplete.") from None
    if upload is None:
        raise missing
    return upload


OPENAPI_UPLOAD = {"post": {
    "summary": "Upload a file to send to a Wazzup24 chat",
    "description": "multipart/form-data with one part `file`. Stored for the chat and answered with its id; "
                   "send it with the send route's `file_id`. Sends nothing by itself. Types: "
                   f"{rules.ALLOWED}; at most 10 MB (photos 5 MB on WhatsApp Business and Telegram).",
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}}}}}},
    "responses": {
        "201": {"description": "stored", "content": {"application/json": {"schema": {
            "type": "object", "required": ["id", "name", "size", "content_type", "url"],
            "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "size": {"type": "integer"},
                           "content_type": {"type": "string"}, "url": {"type": "string"}}}}}},
        "400": error_response("the multipart body is malformed"),
        "404": error_response("`chat_not_found`: no such chat"),
        "409": error_response("not a Wazzup chat"),
        "413": error_response("the file is larger than the chat's messenger takes (`file_too_large`), "
                              "or the body over the route's limit (`payload_too_large`)"),
        "415": error_response("not multipart/form-data, or a file type Wazzup cannot send (`unsupported_file_type`)"),
        "422": error_response("no `file` part, or an empty file"),
        "503": error_response(f"no public address for files ({PUBLIC_URL})"),
        "507": error_response("`wazzup_files_quota`: the stored files would exceed WAZZUP24_FILES_QUOTA_MB; "
                              "nothing was stored"),
    },
}}


class UploadResource(_SendBase):
    """``POST /api/chats/{chat_id}/wazzup24/files``: the chat checks are the send route's."""

    max_body_bytes = rules.MAX_FILE_BYTES + FORM_OVERHEAD
    openapi = OPENAPI_UPLOAD

    @answers_problems
    def on_post(self, req, resp, chat_id):
        settings = self.state.settings
        with self.helpdesk.db.read() as conn:
            self._chat(conn, chat_id)
            chat_type, transport = self._messenger(conn, chat_id)
        _check_form(req)
        if settings.public_url is None:
            raise not_configured()
        name, kind, data = _read_upload(req, lambda k: rules.size_limit(k, chat_type, transport))
        token = secrets.token_urlsafe(32)
        f = self.state.tables["files"]
        with self.helpdesk.db.write() as tx:
            check_quota(tx.conn, self.state, settings, len(data))  # in the write: see file_quota.py
            file_id = tx.conn.execute(sa.insert(f).values(
                token=token, chat_id=chat_id, name=name, content_type=kind.content_type, size=len(data),
                sha256=hashlib.sha256(data).hexdigest(), data=data, uploaded_by=req.context.agent.id,
                created_at=self.helpdesk.clock())).inserted_primary_key[0]
        resp.status = falcon.HTTP_201
        resp.media = {"id": file_id, "name": name, "size": len(data), "content_type": kind.content_type,
                      "url": public_url(settings, token, name)}


class PublicFileResource:
    """``GET``/``HEAD /wazzup24/files/{token}/{name}``: public (Wazzup downloads it); the token is the key."""

    openapi = {"get": {
        "summary": "An uploaded file, as Wazzup downloads it (public: the token in the URL is the key)",
        "responses": {**served_responses("no such file"),
                      "410": error_response("`wazzup_file_expired`: deleted after the retention period")},
    }}

    def __init__(self, helpdesk, state):
        self.helpdesk = helpdesk
        self.state = state

    @answers_problems
    def on_get(self, req, resp, token, name):
        row = self._find(token)  # the bytes only for an answer that carries them
        if row is None or url_name(row.name) != name:
            raise not_found()
        if row.purged_at is not None:
            raise _expired()

        def load_data(offset=0, length=None):
            with_data = self._find(token, with_data=True, offset=offset, length=length)
            if with_data is not None and with_data.purged_at is not None:  # emptied by retention in between
                raise _expired()
            return None if with_data is None else with_data.data  # None: removed with its chat in between

        serve_stored(req, resp, name=row.name, content_type=row.content_type, size=row.size, sha256=row.sha256,
                     load_data=load_data)

    def _find(self, token: str, with_data: bool = False, offset: int = 0, length: int | None = None):
        """The file of ``token``, with ``length`` of its bytes from ``offset`` (all without) ``with_data``."""
        if not TOKEN.fullmatch(token):
            return None
        f = self.state.tables["files"]
        sliced = length is not None
        columns = [f.c.name, f.c.content_type, f.c.size, f.c.sha256, f.c.purged_at]
        columns += [stored_bytes(f.c.data, sliced)] if with_data else []
        with self.helpdesk.db.read() as conn:
            return conn.execute(built(f, ("public_file", with_data, sliced), lambda: sa.select(
                *columns).where(f.c.token == sa.bindparam("b_token", type_=f.c.token.type))),
                {"b_token": token, **slice_params(offset, length)}).first()


def _expired() -> Problem:
    # Only a sent file gets here (retention empties sent files and keeps their rows; unsent uploads are
    # deleted): whoever follows a message's old link learns that it expired, not that it never existed.
    return Problem(410, "wazzup_file_expired",
                   "This file is no longer available: it was deleted after the helpdesk's retention period.")
