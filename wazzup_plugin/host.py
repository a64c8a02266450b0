"""What this plugin expects of a helpdesk host, written as protocols.

The plugin never imports a host: it receives objects satisfying these protocols as hook
arguments (``host_stub/hookspecs.py`` documents the contract they come from).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
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


class Helpdesk(Protocol):
    config: Config
    db: Database
    tables: Tables
    metadata: sa.MetaData
    http: requests.Session
    clock: Callable[[], datetime]
    plugin_state: dict[str, Any]

    def serialize_messages(self, conn: sa.Connection, rows: list) -> list[dict]: ...

    def serialize_chats(self, conn: sa.Connection, rows: list) -> list[dict]: ...
