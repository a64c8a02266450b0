"""``/api/session``: agents sign in to the UI (a session cookie + a CSRF token) and sign out.

The login itself is public (it is how an agent gets credentials), so the route is registered as
public and the responders that need an agent (``GET`` the current session, ``DELETE`` to sign
out) authenticate explicitly through the same code the middleware uses: the cookie must be a
live session, and ``DELETE`` must carry the session's CSRF token.
"""

from __future__ import annotations

import math
import threading
from datetime import timedelta

import falcon
import sqlalchemy as sa
from marshmallow import Schema, fields, validate

from host_stub.auth import (PASSWORD_MAX_LENGTH, SESSION_COOKIE, USERNAME_MAX_LENGTH, AuthMiddleware, LoginThrottle,
                            authenticate_password, create_session, token_digest)
from host_stub.errors import ApiError
from host_stub.models import AgentSession
from host_stub.schemas import ErrorSchema
from host_stub.validation import load_body


class LoginSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=USERNAME_MAX_LENGTH))
    password = fields.String(required=True, validate=validate.Length(min=1, max=PASSWORD_MAX_LENGTH))


class AgentOutSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()


class SessionOutSchema(Schema):
    agent = fields.Nested(AgentOutSchema)
    csrf_token = fields.String(allow_none=True, metadata={
        "description": "send as X-CSRF-Token on every write made with the session cookie"})


_LOGIN = LoginSchema()
_JSON = "application/json"


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


def _agent_json(agent) -> dict:
    return {"id": agent.id, "username": agent.username, "display_name": agent.display_name}


class SessionResource:
    openapi = {
        "post": {"summary": "Sign in: sets the session cookie and returns the CSRF token",
                 "requestBody": {"required": True, "content": {_JSON: {"schema": LoginSchema}}},
                 "responses": {"200": {"description": "signed in", "content": {_JSON: {"schema": SessionOutSchema}}},
                               "400": {"description": "the body is not a JSON object",
                                       "content": {_JSON: {"schema": ErrorSchema}}},
                               "401": {"description": "wrong name or password",
                                       "content": {_JSON: {"schema": ErrorSchema}}},
                               "413": {"description": "the body is over the size limit (`payload_too_large`)",
                                       "content": {_JSON: {"schema": ErrorSchema}}},
                               "415": {"description": "the body is not `application/json` in UTF-8 "
                                                      "(`unsupported_media_type`); a form login is refused",
                                       "content": {_JSON: {"schema": ErrorSchema}}},
                               "422": {"description": "bad input", "content": {_JSON: {"schema": ErrorSchema}}},
                               "429": {"description": "too many failed sign-ins for this name or from this "
                                                      "address (`too_many_attempts`): wait `Retry-After` seconds",
                                       "content": {_JSON: {"schema": ErrorSchema}}},
                               "503": {"description": "too many sign-ins being checked at once (`login_busy`): "
                                                      "try again after `Retry-After` seconds",
                                       "content": {_JSON: {"schema": ErrorSchema}}}}},
        "get": {"summary": "The signed-in agent and the session's CSRF token",
                "responses": {"200": {"description": "the session", "content": {_JSON: {"schema": SessionOutSchema}}},
                              "401": {"description": "not signed in", "content": {_JSON: {"schema": ErrorSchema}}}}},
        "delete": {"summary": "Sign out: ends the session and clears the cookie",
                   "responses": {"204": {"description": "signed out"},
                                 "409": {"description": "signed in with an API token, not a UI session (`not_a_session`): "
                                                        "tokens are revoked with `helpdesk-stub tokens revoke`",
                                         "content": {_JSON: {"schema": ErrorSchema}}},
                                 "401": {"description": "not signed in",
                                         "content": {_JSON: {"schema": ErrorSchema}}},
                                 "403": {"description": "missing CSRF token",
                                         "content": {_JSON: {"schema": ErrorSchema}}}}},
    }

    # A login body is a name and a password: the body-limit middleware refuses a bigger one (413)
    # before it is read, so a public route parses no megabytes of JSON for anyone.
    max_body_bytes = 4096
    # Password checks (one scrypt each: CPU and 16 MiB) at once in this worker; a sign-in that finds
    # them all busy waits at most PASSWORD_CHECK_WAIT seconds, then answers 503 login_busy.
    PASSWORD_CHECKS = 2
    PASSWORD_CHECK_WAIT = 1.0

    def __init__(self, helpdesk):
        self.helpdesk = helpdesk
        self._auth = AuthMiddleware(helpdesk, public_templates=set())
        self.throttle = LoginThrottle(helpdesk.db)
        self.password_checks = threading.BoundedSemaphore(self.PASSWORD_CHECKS)

    def on_post(self, req, resp):
        body = load_body(_LOGIN, req)
        now = self.helpdesk.clock()
        ttl = timedelta(seconds=self.helpdesk.config.session_ttl_seconds)
        keys = self.throttle.keys(body["username"], req.remote_addr)
        wait = self.throttle.retry_after(keys, now)
        if wait is not None:
            raise ApiError(falcon.HTTP_429, "too_many_attempts",
                           f"Too many failed sign-ins; try again in {_duration(wait)}.",
                           headers={"Retry-After": str(wait)})
        if not self.password_checks.acquire(timeout=self.PASSWORD_CHECK_WAIT):
            raise ApiError(falcon.HTTP_503, "login_busy", "Too many sign-ins at once; try again in a moment.",
                           headers={"Retry-After": "1"})
        try:
            with self.helpdesk.db.read() as conn:
                agent = authenticate_password(conn, body["username"], body["password"])
        finally:
            self.password_checks.release()
        if agent is None:
            self.throttle.failed(keys, now)
            raise ApiError(falcon.HTTP_401, "invalid_credentials", "The name or the password is wrong.")
        sessions = AgentSession.__table__
        with self.helpdesk.db.write() as tx:
            self.throttle.succeeded(tx.conn, keys)
            # Housekeeping: expired sessions are useless; drop them while we are writing anyway.
            tx.conn.execute(sa.delete(sessions).where(sessions.c.expires_at <= now))
            token, csrf = create_session(tx.conn, agent.id, now, ttl)
        resp.set_cookie(SESSION_COOKIE, token, max_age=int(ttl.total_seconds()), path="/",
                        secure=req.forwarded_scheme == "https", http_only=True, same_site="Strict")
        resp.media = {"agent": _agent_json(agent), "csrf_token": csrf}

    def on_get(self, req, resp):
        agent = self._auth.authenticate(req)
        resp.media = {"agent": _agent_json(agent), "csrf_token": agent.csrf_token}

    def on_delete(self, req, resp):
        agent = self._auth.authenticate(req)  # checks the CSRF token: DELETE is a write
        if agent.via != "session":
            raise ApiError(falcon.HTTP_409, "not_a_session",
                           "Signing out ends a UI session; an API token is revoked with "
                           "`helpdesk-stub tokens revoke ID` (`helpdesk-stub tokens list` shows the ids).")
        sessions = AgentSession.__table__
        token = req.get_cookie_values(SESSION_COOKIE)[0]
        with self.helpdesk.db.write() as tx:
            tx.conn.execute(sa.delete(sessions).where(sessions.c.token_sha256 == token_digest(token)))
        resp.unset_cookie(SESSION_COOKIE, path="/")
        resp.status = falcon.HTTP_204
