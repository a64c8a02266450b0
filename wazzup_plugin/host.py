"""What this plugin expects of a helpdesk host: the facade as protocols, the host columns as a table.

The plugin never imports a host: it receives objects satisfying these protocols as hook
arguments (``host_stub/hookspecs.py`` documents the contract they come from). It also writes the
host's ``chats`` and ``messages`` rows itself, so it needs their columns: :data:`HOST_COLUMNS`
lists them, :func:`columns_doc` renders the list that ``hookspecs.py`` quotes, and
:func:`check_host` (called by the ``startup`` hook) refuses a host that lacks any of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import requests
import sqlalchemy as sa


class WriteTx(Protocol):
    conn: sa.Connection

    @property
    def change_seq(self) -> int: ...

    def touched(self, chat_ids: Iterable[int] = (), message_ids: Iterable[int] = ()) -> None: ...

    def change_seq_cte(self, only_if: sa.ColumnElement | None = None) -> sa.CTE:
        """PostgreSQL, in ``write_one_statement()``: the counter taken inside the statement."""


class Database(Protocol):
    engine: sa.Engine
    dialect: str

    def read(self) -> AbstractContextManager[sa.Connection]: ...

    def write(self) -> AbstractContextManager[WriteTx]: ...

    def write_one_statement(self) -> AbstractContextManager[WriteTx]:
        """PostgreSQL: a write made of one statement in autocommit (the usual delivery uses it)."""


class Tables(Protocol):
    chats: sa.Table
    messages: sa.Table
    agents: sa.Table


class Config(Protocol):
    env: Mapping[str, str]
    max_body_bytes: int
    request_timeout_seconds: float  # read through request_timeout_seconds(): a host may lack it


# What a host that predates ``config.request_timeout_seconds`` is taken to allow a request: the
# reference host's default, and the usual bound of WSGI servers' worker timeouts (gunicorn: 30-60 s).
DEFAULT_REQUEST_TIMEOUT = 60.0


def request_timeout_seconds(config) -> float:
    """The host's request timeout in seconds: ``config.request_timeout_seconds`` (the contract,
    ``host_stub/hookspecs.py``), or :data:`DEFAULT_REQUEST_TIMEOUT` (60 s) when a host lacks the
    attribute (one written before the contract named it) or it is not a positive number: a send to
    Wazzup must fit in a request, so the plugin needs some bound."""
    value = getattr(config, "request_timeout_seconds", None)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return DEFAULT_REQUEST_TIMEOUT
    return float(value)


class ChatTypes(Protocol):
    def get(self, name: str) -> Any: ...

    def names(self) -> list[str]: ...


class Helpdesk(Protocol):
    config: Config
    db: Database
    tables: Tables
    metadata: sa.MetaData
    http: requests.Session
    clock: Callable[[], datetime]
    chat_types: ChatTypes
    plugin_state: dict[str, Any]

    def serialize_messages(self, conn: sa.Connection, rows: list) -> list[dict]: ...

    def serialize_chats(self, conn: sa.Connection, rows: list) -> list[dict]: ...


# ---------------------------------------------------------------- the host's columns

KEY, SET, NULL, SOMETIMES = "key", "set", "NULL", "NULL*"
RULES = {
    KEY: "the integer primary key; in chats and messages autoincrement (PostgreSQL: SERIAL or IDENTITY, "
         "plugins draw ids from it with pg_get_serial_sequence)",
    SET: "set by every insert the plugin makes; NOT NULL is fine",
    NULL: "set by every insert, sometimes to NULL: must be nullable",
    SOMETIMES: "left unset by some inserts, NULL in others: must be nullable, with no Python-side default",
}


@dataclass(frozen=True)
class HostColumn:
    """A host column the plugin reads or writes.

    ``type``: what its values load as (``int``, ``str``, ``datetime``); ``length``: for ``str``,
    the most characters the plugin writes (None: unbounded text); ``rule``: one of :data:`RULES`.
    """

    name: str
    type: type
    rule: str
    length: int | None = None
    use: str = ""

    @property
    def type_name(self) -> str:
        if self.type is str:
            return f"str({self.length})" if self.length else "text"
        return self.type.__name__


_STAMPS = tuple(f"{s}_at" for s in ("queued", "accepted", "sent", "delivered", "read", "failed", "unknown"))

# What the plugin writes, from its code: chats from inbound/chat_writes.py (``_new_chat_row``,
# ``_refresh_contacts``, ``_chat_follow_update``, ``_follow_edited_last_messages``) and
# outbound/outbox.py (``enqueue``); messages from inbound/new_messages.py (``_message_row``),
# message_edits.py (``_edit``), status_writes.py (``apply_statuses``) and outbound/outbox.py (``enqueue``, ``move_status``, one ``<status>_at`` per
# status of statuses.py). It reads them in outbound/ (send, info, serialize) and fields.py joins on ids.
HOST_COLUMNS: dict[str, tuple[HostColumn, ...]] = {
    "chats": (
        HostColumn("id", int, KEY),
        HostColumn("type", str, SET, 32, "a registered chat type's name: 'wazzup'"),
        HostColumn("title", str, SET, 300, "the contact's name, else the phone or chat id; a group's set once"),
        HostColumn("phone", str, NULL, 32, "digits only"),
        HostColumn("avatar_uri", str, NULL, 2000, "an http(s) URL"),
        HostColumn("unread_count", int, SET, None, "0 at first; + each incoming message"),
        HostColumn("last_message_at", datetime, NULL, None, "NULL until the first message"),
        HostColumn("last_message_preview", str, SET, 200, "'' at first"),
        HostColumn("last_activity_at", datetime, SET, None, "the last message's time, else created_at"),
        HostColumn("created_at", datetime, SET),
        HostColumn("change_seq", int, SET, None, "tx.change_seq of the write"),
    ),
    "messages": (
        HostColumn("id", int, KEY),
        HostColumn("chat_id", int, SET, None, "chats.id"),
        HostColumn("direction", str, SET, 8, "'in' or 'out'"),
        HostColumn("status", str, SET, 16, "inbound queued accepted sent delivered read failed unknown"),
        HostColumn("type", str, SET, 32, "text image video audio document vcard geo ..."),
        HostColumn("text", str, NULL, None, "NULL for a file"),
        HostColumn("content_uri", str, NULL, 2000, "a file's http(s) URL"),
        HostColumn("content_name", str, NULL, 500, "its file name"),
        HostColumn("content_type", str, SOMETIMES, 200, "its MIME type, guessed from the name"),
        HostColumn("author_agent_id", int, SOMETIMES, None, "agents.id of the agent who sent it"),
        HostColumn("author_name", str, NULL, 300, "the author's name (an agent's display_name or username)"),
        HostColumn("messenger_at", datetime, SOMETIMES, None, "when the messenger says it was written"),
        HostColumn("created_at", datetime, SET, None, "when it was stored"),
        HostColumn("queued_at", datetime, NULL, None, "each <status>_at: when it reached that status"),
        *(HostColumn(name, datetime, SOMETIMES) for name in _STAMPS[1:]),
        HostColumn("error_code", str, SOMETIMES, 100, "why it failed: a code"),
        HostColumn("error_text", str, SOMETIMES, 1000, "why it failed: for people"),
        HostColumn("edited_at", datetime, SOMETIMES),
        HostColumn("deleted_at", datetime, SOMETIMES),
        HostColumn("previous_text", str, SOMETIMES, None, "the text before the edit or deletion"),
        HostColumn("change_seq", int, SET, None, "tx.change_seq of the write"),
    ),
    "agents": (
        HostColumn("id", int, KEY, None, "req.context.agent.id"),
    ),
}
# Host rows the plugin writes itself (inserts, updates, and deletes the copies it loses in races).
WRITTEN_TABLES = ("chats", "messages")


def columns_doc() -> str:
    """:data:`HOST_COLUMNS` as ``hookspecs.py`` lists them (a test keeps the two equal)."""
    lines = []
    for table, columns in HOST_COLUMNS.items():
        lines.append(f"{table}:")
        for c in columns:
            lines.append(f"    {c.name:<22}{c.type_name:<11}{c.rule:<7}{c.use}".rstrip())
    return "\n".join(lines)


class HostContractError(ValueError):
    """The host lacks tables or columns this plugin needs; the message lists them.

    A ``ValueError``, as the plugin's setting errors are: the contract's hosts report its message
    as the reason they refuse to start."""


def check_host(helpdesk) -> None:
    """Refuse a host whose tables this plugin cannot use (:class:`HostContractError`, listing it all).

    Checked on the SQLAlchemy tables, not the live database, so it needs no connection and runs
    before migrations too. A mistake here would otherwise surface as a 500 on the first webhook.
    """
    problems = host_problems(helpdesk.metadata, helpdesk.tables)
    if problems:
        raise HostContractError("the helpdesk's tables do not meet the contract the wazzup24 plugin needs "
                                "(host_stub/hookspecs.py, \"Host tables\"): " + "; ".join(problems))


def host_problems(metadata: sa.MetaData, tables) -> list[str]:
    """Everything :func:`check_host` refuses, one sentence each (empty: the host is fine)."""
    problems = []
    for name, columns in HOST_COLUMNS.items():
        given = getattr(tables, name, None)
        table = metadata.tables.get(name)
        if table is None:
            called = f" (helpdesk.tables.{name} is {given.fullname!r})" if isinstance(given, sa.Table) else ""
            problems.append(f"helpdesk.metadata has no table named {name!r}{called}: plugin tables' "
                            f"foreign keys name {name}.id (same MetaData and schema)")
            continue
        if given is not table:
            problems.append(f"helpdesk.tables.{name} is not helpdesk.metadata's {name!r} table")
        problems.extend(_column_problems(table, columns, written=name in WRITTEN_TABLES))
    return problems


def _column_problems(table: sa.Table, columns: tuple[HostColumn, ...], written: bool) -> list[str]:
    problems = []
    name = table.name
    known = {c.name: c for c in columns}
    for want in columns:
        col = table.c.get(want.name)
        if col is None:
            kind = {KEY: "integer primary key", SET: "set by the plugin"}.get(want.rule, "nullable")
            problems.append(f"{name} has no column {want.name!r} ({want.type_name}, {kind})")
            continue
        loads_as = _loads_as(col.type)
        if loads_as is not None and not issubclass(loads_as, want.type):
            problems.append(f"{name}.{want.name} loads as {loads_as.__name__}, not {want.type.__name__}")
        length = getattr(col.type, "length", None)
        if want.type is str and length is not None and (want.length is None or length < want.length):
            problems.append(f"{name}.{want.name} holds {length} characters; the plugin writes "
                            + (f"up to {want.length}" if want.length else "text of any length"))
        if want.rule == KEY:
            if list(table.primary_key.columns) != [col]:
                problems.append(f"{name}'s primary key must be its one column {want.name!r}")
            elif written and table.autoincrement_column is not col:
                problems.append(f"{name}.{want.name} must be autoincrement (PostgreSQL: SERIAL or IDENTITY)")
        elif want.rule in (NULL, SOMETIMES) and not col.nullable:
            how = "writes NULL to it" if want.rule == NULL else "writes NULL to it or leaves it unset"
            problems.append(f"{name}.{want.name} must be nullable: the plugin {how}")
    if not written:
        return problems
    for col in table.columns:
        want = known.get(col.name)
        if _python_side(col.onupdate):
            problems.append(f"{name}.{col.name} has a Python-side onupdate=, which the plugin's statements "
                            "run on the driver refuse (use a database-side default or trigger)")
        if want is not None and want.rule in (KEY, SET, NULL):
            continue  # set by every insert: a default of any kind is never used by the plugin
        if _python_side(col.default):
            problems.append(f"{name}.{col.name} has a Python-side default=, which the plugin's statements "
                            "run on the driver refuse: the plugin leaves it unset (use server_default=)")
        elif want is None and not (col.nullable or col.server_default is not None or col.computed is not None
                                   or col.identity is not None or col is table.autoincrement_column
                                   or getattr(col.default, "is_clause_element", False)):
            problems.append(f"{name}.{col.name} is NOT NULL without a database-side default, and the plugin "
                            "does not set it")
    return problems


def _python_side(default) -> bool:
    """A default SQLAlchemy computes in Python (a value or a callable), not a SQL expression."""
    return bool(getattr(default, "is_scalar", False) or getattr(default, "is_callable", False))


def _loads_as(type_: sa.types.TypeEngine) -> type | None:
    """The Python type a column's values load as (a TypeDecorator's: its implementation's); None: unknown."""
    while isinstance(type_, sa.types.TypeDecorator):
        type_ = type_.impl_instance
    try:
        return type_.python_type
    except NotImplementedError:
        return None
