"""Agents' credentials: slow-KDF passwords, SHA-256-digested API tokens, UI sessions with CSRF.

Every route declares whether it is public; :class:`AuthMiddleware` enforces that for every
route alike (plugins' routes included), so no path is special-cased here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta

import falcon
import sqlalchemy as sa

from host_stub.errors import ApiError
from host_stub.models import Agent, AgentSession, ApiToken

TOKEN_PREFIX = "hdt_"
SESSION_COOKIE = "helpdesk_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})

# scrypt: memory-hard, in the standard library; ~50 ms per check on these machines.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, maxmem=64 * 1024 * 1024, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r),
                            p=int(p), dklen=len(digest_hex) // 2, maxmem=64 * 1024 * 1024)
    return hmac.compare_digest(digest.hex(), digest_hex)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuthenticatedAgent:
    id: int
    username: str
    display_name: str
    via: str  # "token" or "session"
    csrf_token: str | None = None


def create_agent(conn: sa.Connection, username: str, password: str, display_name: str, now) -> int:
    return conn.execute(sa.insert(Agent.__table__).values(
        username=username, display_name=display_name or username,
        password_hash=hash_password(password), is_active=True, created_at=now,
    )).inserted_primary_key[0]


def create_token(conn: sa.Connection, agent_id: int, name: str, now, ttl: timedelta | None = None) -> str:
    token = new_token()
    conn.execute(sa.insert(ApiToken.__table__).values(
        agent_id=agent_id, name=name, token_sha256=token_digest(token), created_at=now,
        expires_at=(now + ttl) if ttl else None,
    ))
    return token


def create_session(conn: sa.Connection, agent_id: int, now, ttl: timedelta) -> tuple[str, str]:
    """Start a UI session; returns (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    conn.execute(sa.insert(AgentSession.__table__).values(
        token_sha256=token_digest(token), agent_id=agent_id, csrf_token=csrf,
        created_at=now, expires_at=now + ttl))
    return token, csrf


def authenticate_password(conn: sa.Connection, username: str, password: str):
    agents = Agent.__table__
    row = conn.execute(sa.select(agents).where(agents.c.username == username)).first()
    if row is None:
        hash_password(password)  # same cost whether or not the name exists
        return None
    if not row.is_active or not verify_password(password, row.password_hash):
        return None
    return row


class AuthMiddleware:
    """Require an agent on every non-public route: a Bearer token, or a session cookie + CSRF."""

    def __init__(self, helpdesk, public_templates: set[str]):
        self.helpdesk = helpdesk
        self.public_templates = public_templates
        # Every request looks its credential up: the statements are built once (building one costs
        # about as much as running it). Refused alike: unknown, revoked, expired, inactive agent.
        t, s, a = ApiToken.__table__, AgentSession.__table__, Agent.__table__
        self._token_stmt = (
            sa.select(a.c.id, a.c.username, a.c.display_name, t.c.expires_at)
            .join(a, a.c.id == t.c.agent_id)
            .where(t.c.token_sha256 == sa.bindparam("b_digest", type_=t.c.token_sha256.type),
                   t.c.revoked_at.is_(None), a.c.is_active))
        self._session_stmt = (
            sa.select(a.c.id, a.c.username, a.c.display_name, s.c.csrf_token, s.c.expires_at)
            .join(a, a.c.id == s.c.agent_id)
            .where(s.c.token_sha256 == sa.bindparam("b_digest", type_=s.c.token_sha256.type), a.c.is_active))

    def process_resource(self, req, resp, resource, params):
        req.context.agent = None
        req.context.read_conn = None
        if resource is None or req.uri_template in self.public_templates:
            return
        if req.method in READ_ONLY_METHODS and getattr(resource, "shares_request_read", False):
            # A page read by GET: the agent's lookup and the page share one read transaction
            # (one connection checkout, one BEGIN/COMMIT; on PostgreSQL three round trips fewer).
            stack = ExitStack()
            req.context.read_stack = stack
            req.context.read_conn = stack.enter_context(self.helpdesk.db.read())
        req.context.agent = self.authenticate(req)

    def process_response(self, req, resp, resource, req_succeeded):
        stack = getattr(req.context, "read_stack", None)
        if stack is not None:  # runs on every outcome, errors included
            req.context.read_stack = req.context.read_conn = None
            stack.close()

    def authenticate(self, req) -> AuthenticatedAgent:
        header = req.get_header("Authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _unauthorized("The Authorization header must be 'Bearer <token>'.")
            agent = self._by_token(req, token.strip())
            if agent is None:
                raise _unauthorized("The API token is invalid, expired or revoked.")
            return agent
        cookie = req.get_cookie_values(SESSION_COOKIE)
        if cookie:
            agent = self._by_session(req, cookie[0])
            if agent is None:
                raise _unauthorized("Your session has expired; sign in again.")
            if req.method not in SAFE_METHODS:
                sent = req.get_header(CSRF_HEADER) or ""
                if not hmac.compare_digest(sent.encode(), (agent.csrf_token or "").encode()):
                    raise ApiError(falcon.HTTP_403, "csrf_failed",
                                   f"This write needs the {CSRF_HEADER} header of your session.")
            return agent
        raise _unauthorized("Authentication required: send 'Authorization: Bearer <token>'.")

    def _by_token(self, req, token: str):
        now, digest = self.helpdesk.clock(), token_digest(token)
        with request_read(req, self.helpdesk.db) as conn:
            row = conn.execute(self._token_stmt, {"b_digest": digest}).first()
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            return None
        return AuthenticatedAgent(row.id, row.username, row.display_name, "token")

    def _by_session(self, req, token: str):
        now, digest = self.helpdesk.clock(), token_digest(token)
        with request_read(req, self.helpdesk.db) as conn:
            row = conn.execute(self._session_stmt, {"b_digest": digest}).first()
        if row is None or row.expires_at <= now:
            return None
        return AuthenticatedAgent(row.id, row.username, row.display_name, "session", row.csrf_token)


@contextmanager
def request_read(req, db):
    """The request's shared read transaction when it has one (see ``AuthMiddleware``), else a new one.

    Resources opt in with ``shares_request_read = True``; only their GET and HEAD requests share.
    """
    conn = getattr(req.context, "read_conn", None)
    if conn is not None:
        yield conn
        return
    with db.read() as conn:
        yield conn


def _unauthorized(message: str) -> ApiError:
    return ApiError(falcon.HTTP_401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})
