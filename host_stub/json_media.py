"""JSON in and out: responses encoded by orjson, request bodies taken as JSON in UTF-8 only.

A page of 50 messages took ~175 µs to encode with ``json.dumps`` and ~9 µs with orjson (both UTF-8,
non-ASCII kept as is). orjson refuses a few things the standard library accepts: integers beyond
64 bits and strings holding lone surrogates; those answers are encoded by ``json.dumps`` with
``ensure_ascii`` (escapes are valid JSON and valid UTF-8), so no answer fails for its encoding.
Only the spacing differs from ``json.dumps``'s default (no space after ``,`` and ``:``).

Request bodies: Falcon's defaults would also parse HTML forms and multipart bodies, which lets a
cross-site HTML form post to the API (a form login, a form send). Only JSON is parsed; any other
Content-Type, or a charset other than UTF-8, answers 415 ``unsupported_media_type``. A body with no
Content-Type is read as JSON. Routes that read their body themselves (the Wazzup webhook) are not
affected: this applies to ``req.get_media()``.
"""

from __future__ import annotations

import json

import falcon
import orjson
from falcon.util.mediatypes import parse_header

from host_stub.errors import ApiError

ACCEPTED = falcon.MEDIA_JSON


def dumps(media) -> bytes:
    try:
        return orjson.dumps(media)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(media, ensure_ascii=True).encode("ascii")


def unsupported(content_type: str | None) -> ApiError | None:
    """The 415 for a request body of ``content_type``, or None when it is JSON in UTF-8 (or unlabelled).

    RFC 8259 requires UTF-8 for JSON between systems and defines no charset parameter, so
    ``charset=utf-8`` is accepted and any other charset refused: decoding what a client names would
    accept any of Python's codecs for no client that needs one, and reading other bytes as UTF-8
    would answer a misleading "not valid JSON"."""
    if not content_type:
        return None
    media_type, params = parse_header(content_type)
    if media_type.lower() != ACCEPTED:
        return ApiError(falcon.HTTP_415, "unsupported_media_type",
                        f"The request body must be {ACCEPTED}; {media_type!r} is not accepted.")
    charset = params.get("charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        return ApiError(falcon.HTTP_415, "unsupported_media_type",
                        f"The request body must be {ACCEPTED} in UTF-8; charset {charset!r} is not accepted.")
    return None


class RequestJSONHandler(falcon.media.JSONHandler):
    """The only request body handler: the standard parser (and its errors), after the type check."""

    def deserialize(self, stream, content_type, content_length):
        refused = unsupported(content_type)
        if refused is not None:
            raise refused
        return super().deserialize(stream, content_type, content_length)


def install(app: falcon.App) -> None:
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(dumps=dumps)
    # Falcon matches a request's Content-Type against these keys as it would an Accept header:
    # "*/*" takes every other type to the same handler, which refuses it with the message above.
    # (A Content-Type that is not a media type at all gets Falcon's own 415, in the same shape.)
    handler = RequestJSONHandler()
    app.req_options.media_handlers = falcon.media.Handlers({falcon.MEDIA_JSON: handler, "*/*": handler})
