"""The host's own tables: chats, messages, agents, API tokens, UI sessions, failed sign-ins and the change counter.

What every messaging channel has lives here; a plugin's own facts live in its prefixed tables,
linked 1:1 to these rows. ``chats.type`` is a plain string validated against the chat type
registry at runtime, so adding a chat type needs no host migration.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Every constraint gets a predictable name, so Alembic can alter it later on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# One status vocabulary for host, plugins, API and UI (DESIGN.md §4a).
MESSAGE_STATUSES = ("inbound", "queued", "accepted", "sent", "delivered", "read", "failed", "unknown")
DIRECTIONS = ("in", "out")
MESSAGE_TYPES = ("text", "image", "video", "audio", "document", "vcard", "geo", "missing_call",
                 "wapi_template", "unsupported", "unknown", "note")


def _isoformat_is_sqlite_text(inner) -> bool:
    """Whether the SQLite dialect writes naive UTC exactly as ``isoformat(" ", "microseconds")`` does."""
    if inner is None:
        return False
    probes = (datetime(2026, 11, 26, 23, 5, 7, 42), datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999))
    return all(inner(d) == d.isoformat(" ", "microseconds") for d in probes)


class UTCDateTime(sa.TypeDecorator):
    """Aware UTC datetimes on every database (SQLite has no time zones: store naive UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use aware UTC datetimes")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    # The two processors below do exactly what the methods above do, fused with the dialect's own
    # processor into one function per dialect: a page of 50 messages converts 600 of these values,
    # and TypeDecorator's generic wrapper (two calls and a dialect check per value) was most of it.

    def bind_processor(self, dialect):
        inner = self.impl_instance.bind_processor(dialect)
        naive = dialect.name == "sqlite"
        utc = timezone.utc
        if naive and _isoformat_is_sqlite_text(inner):
            def process_sqlite(value):
                # The dialect's text, written by one C call: a delivery binds several stamps per
                # message, inside the write lock, and the dialect's formatting was most of it.
                if value is None:
                    return None
                if value.tzinfo is not utc:
                    if value.tzinfo is None:
                        raise ValueError("naive datetime given; use aware UTC datetimes")
                    value = value.astimezone(utc)
                return value.isoformat(" ", "microseconds")[:26]  # "YYYY-MM-DD HH:MM:SS.ffffff"

            return process_sqlite

        def process(value):
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given; use aware UTC datetimes")
            if value.tzinfo is not utc:
                value = value.astimezone(utc)
            if naive:
                value = value.replace(tzinfo=None)
            return inner(value) if inner else value

        return process

    def result_processor(self, dialect, coltype):
        inner = self.impl_instance.result_processor(dialect, coltype)
        utc = timezone.utc
        if dialect.name == "sqlite":
            parse = datetime.fromisoformat

            def process_sqlite(value):
                # SQLite keeps naive UTC as ISO text: one C call gives the aware value (~9x faster
                # than the dialect's parser and a replace); anything unusual takes the general path.
                if value is None:  # most of a message's stamps (queued_at ... unknown_at) are NULL
                    return None
                if value.__class__ is str:
                    try:
                        parsed = parse(value + "+00:00")
                    except ValueError:
                        pass
                    else:
                        if parsed.tzinfo is not None:  # a date alone parses, ignoring the offset
                            return parsed
                return process(value)
        else:
            process_sqlite = None

        def process(value):
            if inner is not None:
                value = inner(value)
            if value is None:
                return None
            if value.tzinfo is None:
                return value.replace(tzinfo=utc)
            return value if value.tzinfo is utc else value.astimezone(utc)

        return process_sqlite or process


def sqlite_stamp_isoformat(text):
    """``UTCDateTime``'s SQLite text as its value's ``isoformat()`` (the answer's form), without the datetime.

    ``"2026-11-27 03:05:07.000042"`` → ``"2026-11-27T03:05:07.000042+00:00"``; whole seconds drop
    the fraction, as ``isoformat`` does. A page of 50 messages holds ~200 stamps, and parsing each
    into a datetime only to format it again was a fifth of the page. The text's layout is checked
    (it is what the type writes: separators and the fraction's digits); text of any other layout
    takes the datetime path.
    """
    if text is None:
        return None
    if (text.__class__ is str and len(text) == 26 and text[10] == " " and text[19] == "."
            and text[13] == text[16] == ":" and text[20:].isdigit()):
        if text[20:] == "000000":
            return f"{text[:10]}T{text[11:19]}+00:00"
        return f"{text[:10]}T{text[11:]}+00:00"
    return sqlite_stamp_value(text).isoformat()


def sqlite_stamp_value(text):
    """``UTCDateTime``'s SQLite text as the aware datetime the type reads it as."""
    return _sqlite_stamp_result()(text)


@functools.cache
def _sqlite_stamp_result():
    return UTCDateTime().result_processor(sqlite.dialect(), None)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(150), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200), default="")
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(sa.ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    # SHA-256 of the token: tokens are long random strings, so a fast digest is enough and keeps
    # every request cheap; a slow KDF is for passwords.
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AgentSession(Base):
    """A signed-in agent in the UI: the cookie carries the token, the database only its digest."""

    __tablename__ = "agent_sessions"

    token_sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(sa.ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LoginFailure(Base):
    """Failed sign-ins counted per key (a username or a client address), to slow password guessing.

    The key is stored as a SHA-256 digest: a password typed into the name field is not kept in clear.
    A row older than the counting window is stale (deleted as failures are written); a sign-in that
    succeeds deletes its name's and its address's rows.
    """

    __tablename__ = "login_failures"

    key_sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    failures: Mapped[int]
    last_failed_at: Mapped[datetime] = mapped_column(index=True)
    blocked_until: Mapped[datetime | None]


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (
        # The chat list: newest activity first (scanned backwards), stable under ties, cheap at any depth.
        sa.Index("ix_chats_activity", "last_activity_at", "id"),
        sa.Index("ix_chats_type_activity", "type", "last_activity_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(32))
    title: Mapped[str] = mapped_column(sa.String(300), default="")
    # Not indexed: search matches it with LIKE '%digits%' on the number stripped of its formatting,
    # which no index serves, and every chat update would pay for the index all the same.
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    avatar_uri: Mapped[str | None] = mapped_column(sa.String(2000))
    unread_count: Mapped[int] = mapped_column(default=0)
    last_message_at: Mapped[datetime | None]
    last_message_preview: Mapped[str] = mapped_column(sa.String(200), default="")
    # Sort key of the list: the last message's time, else the chat's creation time.
    last_activity_at: Mapped[datetime]
    created_at: Mapped[datetime]
    change_seq: Mapped[int] = mapped_column(sa.BigInteger, index=True)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        sa.Index("ix_messages_chat_id_id", "chat_id", "id"),
        sa.Index("ix_messages_chat_id_change_seq", "chat_id", "change_seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(sa.ForeignKey("chats.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(sa.String(8))
    status: Mapped[str] = mapped_column(sa.String(16))
    type: Mapped[str] = mapped_column(sa.String(32), default="text")
    text: Mapped[str | None] = mapped_column(sa.Text)
    content_uri: Mapped[str | None] = mapped_column(sa.String(2000))
    content_name: Mapped[str | None] = mapped_column(sa.String(500))
    content_type: Mapped[str | None] = mapped_column(sa.String(200))
    author_agent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agents.id", ondelete="SET NULL"))
    author_name: Mapped[str | None] = mapped_column(sa.String(300))
    # When the messenger says the message was written (Wazzup's dateTime), and when we stored it.
    messenger_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # One timestamp per status: a late webhook can be told from a fresh one, and the UI can say when.
    queued_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    unknown_at: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(sa.String(100))
    error_text: Mapped[str | None] = mapped_column(sa.String(1000))
    edited_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    previous_text: Mapped[str | None] = mapped_column(sa.Text)
    change_seq: Mapped[int] = mapped_column(sa.BigInteger)


class ChangeCounter(Base):
    """One row whose value grows with every write transaction touching chats or messages.

    The writer holds this row's lock until it commits, so counter values become visible in commit
    order and a poller asking ``changed_since=N`` can never miss a row committed later with a
    smaller value (a plain sequence would allow that).
    """

    __tablename__ = "change_counter"

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
