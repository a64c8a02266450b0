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


class Database(Protocol):
    engine: sa.Engine
    dialect: str

    def read(self) -> AbstractContextManager[sa.Connection]: ...

    def write(self) -> AbstractContextManager[WriteTx]: ...


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
