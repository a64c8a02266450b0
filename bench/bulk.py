"""Chats and messages generated in bulk, straight into the product's tables.

Fast on purpose, and outside the product: SQLite gets one transaction of ``executemany`` on the raw
driver, PostgreSQL gets ``COPY``. Rows carry what the webhook would have stored (host rows plus the
plugin's 1:1 rows), so the API pages them exactly as it would real ones.

Distribution: a tenth of the messages go to 100 "hot" chats (so a chat's latest-50 page has depth),
the rest are spread over every chat; ids grow with time, as they do in production.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import make_url

HOT_CHATS = 100
HOT_CHAT = 1  # one of the busy chats; its latest-50 page is the one benchmarked
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
CHUNK = 20_000
TEXT = "Здравствуйте! Заказ №{} готов, его можно забрать сегодня до 20:00."


def tables(pm) -> dict[str, sa.Table]:
    from host_stub.schema import assemble_metadata

    metadata, _ = assemble_metadata(pm)
    return {name: metadata.tables[name] for name in
            ("chats", "wazzup_chats", "messages", "wazzup_messages", "change_counter")}


def chat_rows(first: int, last: int, seq: int):
    """Host chat rows ``first..last`` (ids), activity growing with the id."""
    for i in range(first, last + 1):
        at = START + timedelta(seconds=i)
        yield {"id": i, "type": "wazzup", "title": f"Клиент {i}", "phone": f"+79{i:09d}", "avatar_uri": None,
               "unread_count": i % 3, "last_message_at": at, "last_message_preview": TEXT.format(i)[:200],
               "last_activity_at": at, "created_at": at, "change_seq": seq}


def wazzup_chat_rows(first: int, last: int):
    for i in range(first, last + 1):
        yield {"chat_id": i, "channel_id": "b96a353b-06f5-4cac-8413-ba1d8e93f981", "chat_type": "whatsapp",
               "wazzup_chat_id": f"79{i:09d}", "contact_name": f"Клиент {i}"}


def message_chat(m: int, n_chats: int) -> int:
    """The chat message ``m`` belongs to (deterministic)."""
    if m % 10 == 0:
        return (m // 10) % min(HOT_CHATS, n_chats) + 1
    return (m * 7919) % n_chats + 1


def message_rows(first: int, last: int, n_chats: int, seq: int):
    for m in range(first, last + 1):
        at = START + timedelta(seconds=m)
        incoming = m % 3 != 0
        yield {"id": m, "chat_id": message_chat(m, n_chats), "direction": "in" if incoming else "out",
               "status": "inbound" if incoming else "read", "type": "text", "text": TEXT.format(m),
               "messenger_at": at, "created_at": at, "read_at": None if incoming else at, "change_seq": seq}


def wazzup_message_rows(first: int, last: int, n_chats: int):
    for m in range(first, last + 1):
        yield {"message_id": m, "chat_id": message_chat(m, n_chats),
               "wazzup_message_id": f"00000000-0000-4000-8000-{m:012x}", "crm_message_id": None,
               "is_echo": False}


def _columns(table: sa.Table, sample: dict) -> list[str]:
    """Columns to write: the ones we fill, plus the others that need a client-side value."""
    cols = []
    for col in table.columns:
        if col.name in sample:
            cols.append(col.name)
        elif col.server_default is not None or col.nullable:
            continue
        elif col.default is not None and not callable(getattr(col.default, "arg", None)):
            cols.append(col.name)
        else:
            raise RuntimeError(f"bench/bulk.py does not know how to fill {table.name}.{col.name} (NOT NULL); "
                               "teach it the column")
    return cols


def _values(table: sa.Table, cols: list[str], row: dict) -> tuple:
    return tuple(row[c] if c in row else table.c[c].default.arg for c in cols)


class BulkWriter:
    """Writes row dicts to one database as fast as its driver allows."""

    def __init__(self, url: str):
        self.url = url
        self.sqlite = url.startswith("sqlite")

    def write(self, batches: list[tuple[sa.Table, object]]) -> float:
        """Write every (table, rows) batch in one transaction; returns the seconds it took."""
        start = time.perf_counter()
        if self.sqlite:
            self._sqlite(batches)
        else:
            self._postgres(batches)
        return time.perf_counter() - start

    def _sqlite(self, batches) -> None:
        import sqlite3

        conn = sqlite3.connect(make_url(self.url).database, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for table, rows in batches:
                cols = None
                chunk = []
                for row in rows:
                    if cols is None:
                        cols = _columns(table, row)
                        sql = (f"INSERT INTO {table.name} ({', '.join(cols)}) "
                               f"VALUES ({', '.join('?' for _ in cols)})")
                    chunk.append(tuple(_sqlite_value(v) for v in _values(table, cols, row)))
                    if len(chunk) >= CHUNK:
                        conn.executemany(sql, chunk)
                        chunk = []
                if chunk:
                    conn.executemany(sql, chunk)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _postgres(self, batches) -> None:
        import psycopg

        dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn) as conn:
            with conn.cursor() as cur:
                for table, rows in batches:
                    cols = None
                    copy_cm = copy = None
                    for row in rows:
                        if cols is None:
                            cols = _columns(table, row)
                            copy_cm = cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN")
                            copy = copy_cm.__enter__()
                        copy.write_row(_values(table, cols, row))
                    if copy_cm is not None:
                        copy_cm.__exit__(None, None, None)
            conn.commit()

    def set_counter(self, counter: sa.Table, value: int) -> None:
        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as conn:
                if conn.execute(sa.update(counter).where(counter.c.id == 1).values(value=value)).rowcount == 0:
                    conn.execute(sa.insert(counter).values(id=1, value=value))
        finally:
            engine.dispose()

    def analyze(self) -> None:
        """PostgreSQL only: statistics now, as autovacuum would gather them a little later."""
        if self.sqlite:
            return
        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("ANALYZE"))
        finally:
            engine.dispose()


def _sqlite_value(value):
    """What SQLAlchemy would store on SQLite: naive UTC datetimes as text, booleans as 0/1."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, bool):
        return int(value)
    return value


def grow(url: str, pm, chats: tuple[int, int], messages: tuple[int, int], n_chats: int, seq: int) -> float:
    """Add chats ``chats[0]..chats[1]`` and messages ``messages[0]..messages[1]``; seconds taken."""
    t = tables(pm)
    writer = BulkWriter(url)
    seconds = writer.write([
        (t["chats"], chat_rows(*chats, seq)),
        (t["wazzup_chats"], wazzup_chat_rows(*chats)),
        (t["messages"], message_rows(*messages, n_chats, seq)),
        (t["wazzup_messages"], wazzup_message_rows(*messages, n_chats)),
    ])
    writer.set_counter(t["change_counter"], seq)
    writer.analyze()
    return seconds
