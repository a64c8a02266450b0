"""Request-wide policies: the body size limit and security headers."""

from __future__ import annotations

import io

import falcon

from host_stub.errors import ApiError


def _body_read_errors() -> tuple[type[BaseException], ...]:
    """What reading a request body raises when the client sent it broken or stopped sending it.

    gunicorn: ``InvalidChunkSize`` and its other ``ParseException`` for a malformed chunked body,
    ``NoMoreData`` (an ``IOError``) for one cut off; any server: a reset or timed-out socket (``OSError``).
    """
    errors: list[type[BaseException]] = [OSError]
    try:
        from gunicorn.http.errors import ParseException
    except ImportError:  # another WSGI server
        pass
    else:
        errors.append(ParseException)
    return tuple(errors)


BODY_READ_ERRORS = _body_read_errors()


def broken_body() -> ApiError:
    return ApiError(falcon.HTTP_400, "invalid_body", "The request body is malformed or incomplete.")


class GuardedInput:
    """``wsgi.input`` whose read errors (see ``BODY_READ_ERRORS``) answer 400 ``invalid_body``.

    Whoever reads the body (``req.get_media()``, a resource reading ``req.bounded_stream``) then gets
    the documented answer instead of a 500 with a traceback."""

    def __init__(self, stream):
        self._stream = stream

    def _guarded(self, reader, args):
        try:
            return reader(*args)
        except BODY_READ_ERRORS:
            raise broken_body() from None

    def read(self, *args):
        return self._guarded(self._stream.read, args)

    def readline(self, *args):
        return self._guarded(self._stream.readline, args)

    def readlines(self, *args):
        return self._guarded(self._stream.readlines, args)

    def __iter__(self):
        return iter(self.readline, b"")

    def __getattr__(self, name):
        return getattr(self._stream, name)


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413 before anyone reads them.

    The limit is ``max_bytes`` (``HELPDESK_MAX_BODY_BYTES``), or a route's own smaller one: a
    resource may set ``max_body_bytes`` (the public login takes 4 KiB), so a public route never
    parses megabytes of JSON for anyone. With Content-Length the header decides. A chunked body has
    no length up front, so it is read here, once the route is known, at most one byte past the
    limit, and handed on as an ordinary sized body (Falcon would otherwise read nothing of it).
    A body that breaks off or is malformed at the HTTP layer answers 400 ``invalid_body``.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes

    def process_request(self, req, resp):
        if req.content_length is not None:
            if req.content_length > self.max_bytes:
                raise self._too_large(self.max_bytes)
            if req.content_length:
                req.env["wsgi.input"] = req.stream = GuardedInput(req.env["wsgi.input"])

    def process_resource(self, req, resp, resource, params):
        limit = min(self.max_bytes, getattr(resource, "max_body_bytes", None) or self.max_bytes)
        if req.content_length is not None:
            if req.content_length > limit:
                raise self._too_large(limit)
            return
        if "chunked" not in (req.get_header("Transfer-Encoding") or "").lower():
            return
        try:
            data = req.env["wsgi.input"].read(limit + 1)
        except BODY_READ_ERRORS:
            raise broken_body() from None
        if len(data) > limit:
            raise self._too_large(limit)
        req.env["wsgi.input"] = req.stream = io.BytesIO(data)
        req.env["CONTENT_LENGTH"] = str(len(data))

    def _too_large(self, limit: int) -> ApiError:
        return ApiError(falcon.HTTP_413, "payload_too_large",
                        f"The request body is larger than the limit of {limit} bytes"
                        + ("." if limit == self.max_bytes else " for this route."))


class SecurityHeadersMiddleware:
    CSP = ("default-src 'self'; img-src 'self' https: data:; media-src 'self' https:; "
           "script-src 'self'; style-src 'self'; connect-src 'self'; frame-src https:; "
           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "no-referrer")
        # A resource's own policy stays (e.g. a plugin serving uploaded files sets a sandbox): routes
        # are the host's and its plugins' code, so one only ever sets a policy for what it serves.
        if resp.get_header("Content-Security-Policy") is None:
            resp.set_header("Content-Security-Policy", self.CSP)
        if req.path.startswith("/api/"):
            resp.set_header("Cache-Control", "no-store")


class PathIdRangeMiddleware:
    """A whole number in a path that no database id column can hold names nothing: 404.

    Path ids (``{chat_id:int}``) are looked up in Integer primary keys, which are 32-bit on
    PostgreSQL and 64-bit on SQLite; a larger number would reach the driver and fail there (a 500)
    instead of simply finding no row. The answer is the one a missing row gets: ``chat_not_found``
    for a ``chat_id``, ``message_not_found`` for a ``message_id``; ``not_found`` stays the code of
    an unknown route (and of an id parameter the host has no name for).
    """

    LIMIT = 2**31 - 1
    CODES = {"chat_id": ("chat_not_found", "There is no chat {}."),
             "message_id": ("message_not_found", "There is no message {}.")}

    def process_resource(self, req, resp, resource, params):
        for name, value in params.items():
            if isinstance(value, int) and not -self.LIMIT <= value <= self.LIMIT:
                code, message = self.CODES.get(name, ("not_found", f"There is nothing with {name} {{}}."))
                raise ApiError(falcon.HTTP_404, code, message.format(value))
