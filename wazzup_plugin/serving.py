"""Serving stored bytes from the helpdesk's own origin, safely: the files agents upload (Wazzup
downloads them) and the media customers send (agents view them).

What is served there must never run there: every answer carries ``nosniff`` and a sandboxing
Content-Security-Policy, and a Content-Disposition that downloads anything but media and PDF. The
SHA-256 is the ETag: an unchanged file is answered 304.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import falcon

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
    return {"200": {"description": "the file's bytes", "content": {"application/octet-stream": {}}},
            "304": {"description": "not modified (If-None-Match)"},
            "404": error_response(missing)}


def not_found() -> Problem:
    # The same answer for an unknown token and a wrong name: nothing tells which files exist.
    return Problem(404, "not_found", "Not found.")


def serve_stored(req, resp, *, name: str, content_type: str, size: int, sha256: str, load_data) -> None:
    """Answer a GET or HEAD with a stored file: its headers, 304 when the client has it, else its
    bytes (``load_data()``, read only for a GET that needs them; None: it went away meanwhile)."""
    etag = f'"{sha256}"'
    resp.set_header("ETag", etag)
    resp.set_header("Cache-Control", f"private, max-age={CACHE_SECONDS}")
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Content-Security-Policy", SANDBOX_CSP)
    resp.set_header("Content-Disposition", content_disposition(name, content_type))
    if etag in (req.get_header("If-None-Match") or ""):
        resp.status = falcon.HTTP_304
        return
    resp.content_type = content_type
    if req.method == "GET":
        data = load_data()
        if data is None:
            raise not_found()
        resp.data = data
    else:
        resp.content_length = size


def content_disposition(name: str, content_type: str) -> str:
    """Inline for media and PDF, a download otherwise; the name both as plain ASCII and RFC 6266 UTF-8."""
    kind = "inline" if rules.is_inline(content_type) else "attachment"
    fallback = "".join("_" if c < " " or c == "\x7f" else c for c in
                       name.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("\\", "_"))
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
