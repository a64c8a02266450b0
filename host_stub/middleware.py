"""Request-wide policies: the body size limit and security headers."""

from __future__ import annotations

import io

import falcon

from host_stub.errors import ApiError


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413 before anyone reads them.

    With Content-Length the header decides. A chunked body has no length up front, so it is read
    here, at most one byte past the limit, and handed on as an ordinary sized body (Falcon
    would otherwise read nothing of it).
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes

    def process_request(self, req, resp):
        if req.content_length is not None:
            if req.content_length > self.max_bytes:
                raise self._too_large()
            return
        if "chunked" not in (req.get_header("Transfer-Encoding") or "").lower():
            return
        data = req.env["wsgi.input"].read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise self._too_large()
        req.env["wsgi.input"] = req.stream = io.BytesIO(data)
        req.env["CONTENT_LENGTH"] = str(len(data))

    def _too_large(self) -> ApiError:
        return ApiError(falcon.HTTP_413, "payload_too_large",
                        f"The request body is larger than the limit of {self.max_bytes} bytes.")


class SecurityHeadersMiddleware:
    CSP = ("default-src 'self'; img-src 'self' https: data:; media-src 'self' https:; "
           "script-src 'self'; style-src 'self'; connect-src 'self'; frame-src https:; "
           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "no-referrer")
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
