"""Serving stored bytes from the helpdesk's own origin, safely: the files agents upload (Wazzup
downloads them) and the media customers send (agents view them).

What is served there must never run there: every answer carries ``nosniff`` and a sandboxing
Content-Security-Policy, and a Content-Disposition that downloads anything but media and PDF. The
SHA-256 is the ETag: an unchanged file is answered 304. One byte range (``Range``, :mod:`byte_ranges`) is
answered 206 with only those bytes, read from the database as a slice (:func:`stored_bytes`).
"""

from __future__ import annotations

import re
from urllib.parse import quote

import falcon
import sqlalchemy as sa

from wazzup_plugin.byte_ranges import NotSatisfiable, requested_span
from wazzup_plugin.outbound import file_rules as rules
from wazzup_plugin.outbound.http import Problem, error_response

TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")   # an unguessable key in a public URL
CACHE_SECONDS = 3600
SANDBOX_CSP = "sandbox; default-src 'none'"


def token_in_url(path: str) -> re.Pattern:
    """A served file's token in its URL under ``path``, however written (%-encoded included), for the
    host to mask in every log line (``hooks.register_log_masks``): the token is the file's only key."""
    return re.compile(rf"({re.escape(path)}/)[^/?#\s\"']+")


def served_responses(missing: str) -> dict:
    """The OpenAPI responses of a route answered by :func:`serve_stored` (``missing``: when it is 404)."""
    content_range = {"Content-Range": {"description": "`bytes first-last/size`; `bytes */size` on a 416",
                                       "required": True, "schema": {"type": "string"}}}
    return {"200": {"description": "the file's bytes (also for several ranges, or a `Range` that is "
                                   "malformed or whose `If-Range` is not the file's ETag)",
                    "content": {"application/octet-stream": {}}},
            "206": {"description": "the one byte range asked for (`Range: bytes=first-last`, `first-` or "
                                   "`-count`), clipped to the file's end",
                    "headers": content_range, "content": {"application/octet-stream": {}}},
            "304": {"description": "not modified (If-None-Match)"},
            "404": error_response(missing),
            "416": {**error_response("`range_not_satisfiable`: the range starts past the file's end"),
                    "headers": content_range}}


def not_found() -> Problem:
    # The same answer for an unknown token and a wrong name: nothing tells which files exist.
    return Problem(404, "not_found", "Not found.")


def serve_stored(req, resp, *, name: str, content_type: str, size: int, sha256: str, load_data) -> None:
    """Answer a GET or HEAD with a stored file: 304 when the client has it, else its headers and its
    bytes, all of them or the one range asked for. ``load_data(offset=0, length=None)`` reads them
    (only for a GET that needs them): ``length`` bytes from ``offset``, all without; None when the file
    went away meanwhile (a Problem it raises is the answer). HEAD answers as GET would, without a body."""
    etag = f'"{sha256}"'
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Content-Security-Policy", SANDBOX_CSP)
    resp.set_header("Accept-Ranges", "bytes")
    if etag in (req.get_header("If-None-Match") or ""):
        _cacheable(resp, etag)
        resp.status = falcon.HTTP_304
        return
    try:
        span = requested_span(req.get_header("Range"), req.get_header("If-Range"), etag, size)
    except NotSatisfiable:
        raise Problem(416, "range_not_satisfiable",
                      f"The range asked for starts past the file's end ({size} bytes).",
                      headers={"Content-Range": f"bytes */{size}"}) from None
    offset, length = (0, size) if span is None else (span[0], span[1] - span[0] + 1)
    if req.method == "GET":
        # Read before any header of the file is set: a file gone meanwhile answers 404 (or the loader's
        # 410) without a stray Content-Range or Content-Disposition.
        data = load_data() if span is None else load_data(offset, length)
        if data is None:
            raise not_found()
        resp.data = data
    else:
        resp.content_length = length
    _cacheable(resp, etag)
    resp.set_header("Content-Disposition", content_disposition(name, content_type))
    resp.content_type = content_type
    if span is not None:
        resp.status = falcon.HTTP_206
        resp.set_header("Content-Range", f"bytes {span[0]}-{span[1]}/{size}")


def _cacheable(resp, etag: str) -> None:
    resp.set_header("ETag", etag)
    resp.set_header("Cache-Control", f"private, max-age={CACHE_SECONDS}")


def stored_bytes(column: sa.Column, sliced: bool):
    """The stored file's ``column`` in a select: whole, or (``sliced``) only the bytes of parameters
    ``b_from`` (1-based) and ``b_count`` (:func:`slice_params`), cut by the database so a seek in a
    large video never carries the whole file. ``substr`` takes a BLOB on SQLite and a bytea on PostgreSQL."""
    if not sliced:
        return column
    return sa.func.substr(column, sa.bindparam("b_from", type_=sa.Integer),
                          sa.bindparam("b_count", type_=sa.Integer), type_=sa.LargeBinary).label(column.name)


def slice_params(offset: int, length: int | None) -> dict:
    """The parameters of :func:`stored_bytes` for ``length`` bytes from ``offset`` (None: not sliced)."""
    return {} if length is None else {"b_from": offset + 1, "b_count": length}


def content_disposition(name: str, content_type: str) -> str:
    """Inline for media and PDF, a download otherwise; the name both as plain ASCII and RFC 6266 UTF-8."""
    kind = "inline" if rules.is_inline(content_type) else "attachment"
    fallback = "".join("_" if c < " " or c == "\x7f" else c for c in
                       name.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("\\", "_"))
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
