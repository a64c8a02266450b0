"""Errors and the single JSON error shape every route answers with.

Every JSON error body is ``{"status": int, "code": str, "message": str}`` plus ``"fields"``
(``{field: [messages]}``) where input was wrong. Plugins raise :class:`ApiError` (or any
``falcon.HTTPError``) and get the same shape.
"""

from __future__ import annotations

import logging
import traceback

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


# SQLite result codes (the primary code: the low byte of an extended one) that say the database is
# unavailable for now rather than that the statement is wrong: busy/locked past the busy timeout,
# the disk full, the file unreadable, unopenable or read-only.
_SQLITE_UNAVAILABLE = {5: "SQLITE_BUSY", 6: "SQLITE_LOCKED", 8: "SQLITE_READONLY", 10: "SQLITE_IOERR",
                       13: "SQLITE_FULL", 14: "SQLITE_CANTOPEN"}
# PostgreSQL SQLSTATEs of the same kind: connection exceptions (08), insufficient resources (53: a
# full disk, out of memory, too many connections), the server shutting down or starting (57P0x),
# a lock or statement timeout (55P03, 57014), a deadlock or serialization failure (40001, 40P01).
_PG_UNAVAILABLE_CLASSES = ("08", "53")
_PG_UNAVAILABLE = {"57P01", "57P02", "57P03", "57P04", "55P03", "57014", "40001", "40P01"}


def database_unavailable(ex: BaseException) -> bool:
    """Whether ``ex`` (a SQLAlchemy error) says the database is unavailable for now, so that the same
    request may succeed later (503), rather than that the statement cannot work (500).

    Unavailable: a lost connection (SQLAlchemy invalidated it, or a transaction on it still needs a
    rollback), a connection that could not be made, a lock or statement timeout, a full disk. A
    driver error with a code not listed here (a missing column, a syntax error) is a bug: 500. An
    error with no driver code the host knows (another driver, a wrapper without one) counts as
    unavailable, as every ``OperationalError`` did before."""
    from sqlalchemy import exc as sa_exc

    if isinstance(ex, (sa_exc.DisconnectionError, sa_exc.PendingRollbackError)):
        return True
    if not isinstance(ex, sa_exc.DBAPIError):
        return False
    if ex.connection_invalidated or isinstance(ex, sa_exc.InterfaceError):
        return True
    if not isinstance(ex, sa_exc.OperationalError):
        return False
    orig = ex.orig
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        return sqlite_code & 0xFF in _SQLITE_UNAVAILABLE
    if hasattr(orig, "sqlstate"):  # psycopg: no SQLSTATE is a client-side failure (connecting, connection lost)
        state = orig.sqlstate
        return state is None or state[:2] in _PG_UNAVAILABLE_CLASSES or state in _PG_UNAVAILABLE
    return True


def _driver_reason(ex: BaseException) -> str:
    """The driver's own words (``OperationalError: database or disk is full``): never the statement
    or its parameters, which SQLAlchemy's own message carries."""
    orig = getattr(ex, "orig", None)
    if orig is None:  # DisconnectionError, PendingRollbackError: SQLAlchemy's own words, no statement
        reason = str(ex).split(" (Background on this error")[0].strip()
        return type(ex).__name__ + (f": {reason}" if reason else "")
    code = getattr(orig, "sqlite_errorname", None) or getattr(orig, "sqlstate", None)
    # psycopg's full message may quote row values (DETAIL: Key (...)=(...)): its primary line only.
    reason = (getattr(getattr(orig, "diag", None), "message_primary", None) or str(orig)).strip()
    return f"{type(orig).__name__}{f' [{code}]' if code else ''}: {reason}"


def _where(ex: BaseException) -> str:
    """The innermost frames outside SQLAlchemy that led to ``ex`` (the traceback's own last line
    would print the statement's parameters)."""
    frames = [f for f in traceback.extract_tb(ex.__traceback__) if "/sqlalchemy/" not in f.filename]
    return " < ".join(f"{'/'.join(f.filename.rsplit('/', 2)[-2:])}:{f.lineno} {f.name}" for f in reversed(frames[-3:]))


def unexpected_error_handler(req, resp, ex, params):
    """A bug or an outage must not leak internals: log it, answer a plain 500 (or 503)."""
    from sqlalchemy.exc import DBAPIError, DisconnectionError, PendingRollbackError

    if isinstance(ex, falcon.HTTPError):
        return http_error_handler(req, resp, ex, params)
    if isinstance(ex, (DBAPIError, DisconnectionError, PendingRollbackError)):
        if database_unavailable(ex):
            log.error("database unavailable on %s %s: %s", req.method, req.path, _driver_reason(ex))
            http_error_handler(req, resp, ApiError(
                falcon.HTTP_503, "database_unavailable",
                "The database is unavailable; nothing was stored. Try again shortly.",
                headers={"Retry-After": "5"}), params)
            return
        log.error("database error on %s %s: %s", req.method, req.path, _driver_reason(ex),
                  extra={"context": {"at": _where(ex)}})
    else:
        log.exception("unhandled error on %s %s", req.method, req.path)
    http_error_handler(req, resp, ApiError(
        falcon.HTTP_500, "internal_error", "Internal server error."), params)
