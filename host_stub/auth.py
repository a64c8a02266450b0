"""Agents' credentials: slow-KDF passwords, SHA-256-digested API tokens, UI sessions with CSRF.

Every route declares whether it is public; :class:`AuthMiddleware` enforces that for every
route alike (plugins' routes included), so no path is special-cased here.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta

import falcon
import sqlalchemy as sa

from host_stub.errors import ApiError
from host_stub.models import Agent, AgentSession, ApiToken, LoginFailure

TOKEN_PREFIX = "hdt_"
SESSION_COOKIE = "helpdesk_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})

# What an agent's credentials may be: what sign-in accepts (LoginSchema), within the columns' sizes.
USERNAME_MAX_LENGTH = Agent.__table__.c.username.type.length
PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH = 8, 1024

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
    return insert_agent(conn, username, hash_password(password), display_name, now)


def insert_agent(conn: sa.Connection, username: str, password_hash: str, display_name: str, now) -> int:
    """An active agent whose password ``hash_password`` has hashed already (scrypt is slow on purpose:
    a caller creating many agents with one password hashes it once)."""
    return conn.execute(sa.insert(Agent.__table__).values(
        username=username, display_name=display_name or username,
        password_hash=password_hash, is_active=True, created_at=now,
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


class LoginThrottle:
    """Slows online password guessing: failed sign-ins are counted per username and per client address.

    Once a key has failed ``limit`` times, each without a gap of ``WINDOW`` since the one before, it is
    blocked: attempts answer 429 with Retry-After, without a password check, for ``BASE_DELAY`` after
    the limit-th failure, doubling with every further one, up to ``MAX_DELAY``. A key with no failure
    for ``WINDOW`` starts from zero (``MAX_DELAY`` is shorter, so waiting out a block is still counted:
    a guesser at the cap gets about four tries an hour). A sign-in that succeeds resets its name and its
    address. Unknown names are counted as known ones are (no hint which names exist).

    The address limit is higher: an office behind one NAT, or every client behind a reverse proxy or
    tunnel (whose own address is what the host sees), shares one address. The counters live in the
    database (``login_failures``), so every worker and process sees the same ones.
    """

    USERNAME_LIMIT = 5
    ADDRESS_LIMIT = 20
    WINDOW = timedelta(hours=1)
    BASE_DELAY = timedelta(seconds=15)
    MAX_DELAY = timedelta(minutes=15)

    def __init__(self, db):
        self.db = db
        self.table = LoginFailure.__table__

    @staticmethod
    def keys(username: str, address: str | None) -> dict[str, int]:
        """The digest of each key to count this attempt under, with its limit."""
        def digest(kind: str, value: str) -> str:
            return hashlib.sha256(f"{kind}\0{value}".encode("utf-8", "backslashreplace")).hexdigest()

        keys = {digest("username", username): LoginThrottle.USERNAME_LIMIT}
        if address:
            keys[digest("address", address)] = LoginThrottle.ADDRESS_LIMIT
        return keys

    def retry_after(self, keys: dict[str, int], now) -> int | None:
        """Whole seconds until an attempt under ``keys`` is allowed again; None when it is allowed now."""
        t = self.table
        with self.db.read() as conn:
            until = conn.execute(sa.select(sa.func.max(t.c.blocked_until)).where(
                t.c.key_sha256.in_(list(keys)), t.c.blocked_until > now)).scalar()
        if until is None:
            return None
        return max(1, math.ceil((until - now).total_seconds()))

    def failed(self, keys: dict[str, int], now) -> None:
        t = self.table
        with self.db.write() as tx:
            # Housekeeping: stale rows (every block ends within the window) go first, so a key seen
            # again after a quiet window starts from zero.
            tx.conn.execute(sa.delete(t).where(t.c.last_failed_at <= now - self.WINDOW))
            for key, limit in sorted(keys.items()):
                self._count(tx.conn, key, limit, now)

    def _count(self, conn, key: str, limit: int, now) -> None:
        t = self.table
        row = conn.execute(sa.select(t.c.failures).where(t.c.key_sha256 == key).with_for_update()).first()
        failures = 1 if row is None else row.failures + 1
        blocked_until = None
        if failures >= limit:
            delay = min(self.BASE_DELAY * 2 ** min(failures - limit, 32), self.MAX_DELAY)
            blocked_until = now + delay
        values = {"failures": failures, "last_failed_at": now, "blocked_until": blocked_until}
        if row is not None:
            conn.execute(sa.update(t).where(t.c.key_sha256 == key).values(**values))
            return
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(t).values(key_sha256=key, **values))
        except sa.exc.IntegrityError:  # a concurrent failure inserted it first: count on its row
            self._count(conn, key, limit, now)

    def succeeded(self, conn, keys: dict[str, int]) -> None:
        t = self.table
        conn.execute(sa.delete(t).where(t.c.key_sha256.in_(list(keys))))


class _RequestFailed(Exception):
    """Handed to the request's shared read when the request failed: its transaction rolls back."""


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
        if stack is None:
            return
        # Runs on every outcome, errors included. A request that failed (its error already answered,
        # e.g. 503 for a dropped connection) ends its read with a rollback, not a commit: a commit on
        # a connection the driver lost would raise PendingRollbackError and turn the answer into a 500.
        conn = req.context.read_conn
        req.context.read_stack = req.context.read_conn = None
        if req_succeeded and not (conn is not None and conn.invalidated):
            stack.close()
        else:
            failed = _RequestFailed()
            stack.__exit__(_RequestFailed, failed, None)

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
