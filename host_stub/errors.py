"""Errors and the single JSON error shape every route answers with.

Every JSON error body is ``{"status": int, "code": str, "message": str}`` plus ``"fields"``
(``{field: [messages]}``) where input was wrong. Plugins raise :class:`ApiError` (or any
``falcon.HTTPError``) and get the same shape.
"""

from __future__ import annotations

import logging

import falcon

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The app cannot start: the message says what to fix."""


class ApiError(falcon.HTTPError):
    """An error answered as the documented JSON shape."""

    def __init__(self, status, code: str, message: str, fields: dict | None = None, headers=None):
        super().__init__(status, title=code, description=message, headers=headers)
        self.code = code
        self.message = message
        self.fields = fields

    def to_dict(self, obj_type=dict):
        body = obj_type()
        body["status"] = self.status_code
        body["code"] = self.code
        body["message"] = self.message
        if self.fields:
            body["fields"] = self.fields
        return body


def _code_for(status_code: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        411: "length_required",
        413: "payload_too_large",
        415: "unsupported_media_type",
        422: "invalid_input",
        429: "too_many_requests",
        502: "bad_gateway",
        503: "unavailable",
    }.get(status_code, "error" if status_code < 500 else "internal_error")


def http_error_handler(req, resp, ex, params):
    """Turn Falcon's own errors (404 route, 405, bad headers) into the documented shape."""
    if isinstance(ex, ApiError):
        body = ex.to_dict()
    elif isinstance(ex, falcon.MediaMalformedError):
        body = {"status": 400, "code": "invalid_json", "message": "The request body is not valid JSON."}
    else:
        body = {
            "status": ex.status_code,
            "code": _code_for(ex.status_code),
            "message": ex.description or ex.title or falcon.HTTP_STATUS_TEXT.get(ex.status_code, ""),
        }
    resp.status = ex.status
    resp.media = body
    if ex.headers:
        resp.set_headers(ex.headers)


def unexpected_error_handler(req, resp, ex, params):
    """A bug or an outage must not leak internals: log it, answer a plain 500 (or 503)."""
    from sqlalchemy.exc import OperationalError, InterfaceError, DisconnectionError

    if isinstance(ex, falcon.HTTPError):
        return http_error_handler(req, resp, ex, params)
    if isinstance(ex, (OperationalError, InterfaceError, DisconnectionError)):
        log.error("database unavailable on %s %s: %s", req.method, req.path, type(ex).__name__)
        http_error_handler(req, resp, ApiError(
            falcon.HTTP_503, "database_unavailable",
            "The database is unavailable; nothing was stored. Try again shortly.",
            headers={"Retry-After": "5"}), params)
        return
    log.exception("unhandled error on %s %s", req.method, req.path)
    http_error_handler(req, resp, ApiError(
        falcon.HTTP_500, "internal_error", "Internal server error."), params)
