"""Writing a parsed delivery: set-based statements in the caller's one transaction.

Every statement works on a whole delivery at once (batched ``IN`` selects, executemany inserts
and updates), never a query per message. Rows are created with insert-or-ignore under unique
constraints — never check-then-insert — and written in key order. A delivery's read-only lookups
(its stored messages and chats, ``prefetch``) run before its write lock; the first thing a write
does is take the host's change counter (``tx.change_seq``): its row lock is held to commit, so on
PostgreSQL concurrent deliveries queue there exactly as ``BEGIN IMMEDIATE`` makes them queue on
SQLite. The unique constraints stay the real guard; losers of a race delete their own extra rows.
On PostgreSQL the usual delivery, one new incoming message in a known chat, is one statement in
autocommit that takes the counter itself (``_write_in_one_statement``).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
from collections import defaultdict, namedtuple
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

import sqlalchemy as sa

from wazzup_plugin.chat_type import CHAT_TYPE
from wazzup_plugin.inbound.parse import (ChannelUpdate, Message, Quarantined, StatusReport, parse_message,
                                         parse_status, raw_json)
from wazzup_plugin.statuses import FROM_WAZZUP, TIMESTAMP_COLUMN, can_move
from wazzup_plugin.driver_sql import DriverStatement, one_of
from wazzup_plugin.store_common import (built, dialect_insert, host_tables, insert_ignore, insert_ignore_returning,
                                        insert_returning_ids, upsert)

log = logging.getLogger(__name__)

CHUNK = 500                      # ids per IN (...) list: far below every database's parameter limit
PARKED_TTL = timedelta(days=1)
# Sends whose Wazzup answer may still come: an echo in their chat is parked until it does.
IN_FLIGHT = ("queued",)
# Sends settled without a Wazzup id (REPEATED_CRM_MESSAGE_ID, or a fate unclear past the dedupe window):
# no answer will bring the id, so an echo with the same content is taken as that send.
SETTLED_WITHOUT_ID = ("accepted", "unknown")
# How far Wazzup's clock and ours may disagree when an echo's time is compared with our attempts.
ECHO_CLOCK_SKEW = timedelta(minutes=2)
DELIVERY_RANK = {"sent": 1, "delivered": 2, "read": 3}
PHONE_CHAT_TYPES = ("whatsapp", "viber")

DELETED_PREVIEW = "[Deleted message]"
PLACEHOLDERS = {
    "image": "[Image]", "video": "[Video]", "audio": "[Audio]", "document": "[Document]",
    "vcard": "[Contact card]", "geo": "[Location]", "missing_call": "Missed call",
    "wapi_template": "[Template message]", "text": "[Empty message]",
    "unsupported": "[A message of a type Wazzup does not support: open it on the phone]",
}


def _chunks(values):
    values = list(values)
    for i in range(0, len(values), CHUNK):
        yield values[i:i + CHUNK]


def _unbounded(type_: sa.types.TypeEngine) -> sa.types.TypeEngine:
    return sa.String() if isinstance(type_, sa.String) else type_


# The plugin's columns of a new message's Wazzup row, but for the host id it belongs to.
WAZZUP_COLUMNS = ("chat_id", "wazzup_message_id", "crm_message_id", "is_echo", "sent_from_app", "author_id",
                  "ref_message_id", "version_at")


def _selected_parameters(table: sa.Table, prefix: str, columns) -> list:
    """``prefix + column`` parameters as a SELECT list for ``INSERT … SELECT``, each cast to its column's type.

    In a SELECT list a parameter has no column to take its type from (a NULL would be text). Never
    cast to a bounded VARCHAR: that cast truncates silently, where the column refuses.
    """
    return [sa.cast(sa.bindparam(f"{prefix}{k}", type_=table.c[k].type), _unbounded(table.c[k].type))
            for k in columns]


def placeholder(msg: Message) -> str:
    if msg.type == "unknown":
        return f"[Unknown message type: {msg.raw_type}]" if msg.raw_type else "[Unknown message type]"
    return PLACEHOLDERS.get(msg.type, "[Message]")


def preview(text: str | None, msg_type: str, content_name: str | None) -> str:
    if text:
        return re.sub(r"\s+", " ", text).strip()[:200]
    label = PLACEHOLDERS.get(msg_type, "[Message]")
    return f"{label} {content_name}"[:200] if content_name else label


def content_name(uri: str | None) -> str | None:
    """The file name a link carries (``?filename=`` as Wazzup's store uses, else the last path part)."""
    if not uri:
        return None
    parts = urlsplit(uri)
    name = (parse_qs(parts.query).get("filename") or [None])[0]
    if not name:
        last = PurePosixPath(unquote(parts.path)).name
        name = last if "." in last else None
    return name.replace("\x00", "")[:500] if name else None


def content_fields(uri: str | None) -> dict:
    """A message's ``content_uri``, ``content_name`` and ``content_type``, as derived from its link
    (a new message's row, and an edit that brings a new link)."""
    name = content_name(uri)
    return {"content_uri": uri, "content_name": name, "content_type": mimetypes.guess_type(name)[0] if name else None}


def chat_phone(msg: Message) -> str | None:
    if msg.chat_type in PHONE_CHAT_TYPES:
        digits = re.sub(r"\D", "", msg.chat_id)
    elif msg.contact_phone:
        digits = re.sub(r"\D", "", msg.contact_phone)
    else:
        return None
    return digits[:32] or None


def _could_be_its_echo(send, echo: Message) -> bool:
    """Whether Wazzup's time for ``echo`` lies within the attempts of ``send`` (a row with
    ``first_attempt_at`` and ``updated_at``, when it settled), give or take the clocks' skew."""
    if echo.at is None or send.first_attempt_at is None:
        return True  # nothing to compare: content decides, as before
    return send.first_attempt_at - ECHO_CLOCK_SKEW <= echo.at <= send.updated_at + ECHO_CLOCK_SKEW


def _is_just_the_number(name: str, msg: Message) -> bool:
    return not re.search(r"[^\d\s+()\-]", name) or name == msg.chat_id


def _contact_name(msg: Message) -> str | None:
    """The name a message gives its chat's contact, if any: WhatsApp may send the number as the
    name, and a chat is never renamed to it."""
    name = msg.contact_name
    return name if name and not _is_just_the_number(name, msg) else None


def _changes_nothing_when_stored(msg: Message) -> bool:
    """A copy of a stored message that brings nothing new: no echo (statuses), no edit, no deletion."""
    return not (msg.is_echo or msg.is_edited or msg.is_deleted)


def _version(msg: Message) -> tuple:
    """Which copy of one message is newest: a deletion beats an edit beats the original."""
    return (2 if msg.is_deleted else 1 if msg.is_edited else 0, msg.at.timestamp() if msg.at else 0.0)


def newest_copies(items: list[Message]) -> dict[str, Message]:
    """Several copies of one message in a delivery: the newest one speaks."""
    newest: dict[str, Message] = {}
    for msg in items:
        held = newest.get(msg.message_id)
        if held is None or _version(msg) > _version(held):
            newest[msg.message_id] = msg
    return newest


@dataclass
class Summary:
    new: list[str] = field(default_factory=list)          # Wazzup ids stored for the first time
    duplicates: list[str] = field(default_factory=list)   # already stored: nothing new (or edits applied)
    edited: list[str] = field(default_factory=list)
    statuses_applied: int = 0
    parked: list[str] = field(default_factory=list)
    quarantined: int = 0
    channels: int = 0
    expired: list[str] = field(default_factory=list)
    chats_created: list[int] = field(default_factory=list)
    chat_ids: set[int] = field(default_factory=set)
    message_ids: set[int] = field(default_factory=set)

    def add(self, other: "Summary") -> None:
        """Fold in what a later transaction of the same delivery did: lists and counts add up, sets
        join (every field, so a field added later is folded too)."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, mine | theirs if isinstance(mine, set) else mine + theirs)

    def context(self, limit: int = 50) -> dict:
        return {
            "new_messages": len(self.new), "duplicates": len(self.duplicates), "edited": len(self.edited),
            "statuses_applied": self.statuses_applied, "parked": len(self.parked),
            "quarantined": self.quarantined, "channels": self.channels,
            "chats_created": self.chats_created[:limit], "chat_ids": sorted(self.chat_ids)[:limit],
            "wazzup_message_ids": (self.new + self.duplicates)[:limit],
        }


class Writer:
    """One delivery (or one ``apply_parked`` call) written inside the caller's transaction."""

    def __init__(self, tx, state, now: datetime):
        self.tx = tx
        self.conn: sa.Connection = tx.conn
        self.t = state.tables
        self.chats, self.messages = host_tables(state)
        self.now = now
        self.summary = Summary()
        # Set when a statement of this transaction, run under the change counter, saw no parked item.
        self._nothing_parked = False

    # ------------------------------------------------------------------ basics

    @property
    def seq(self) -> int:
        return self.tx.change_seq

    def lock(self) -> None:
        """Take the change counter first: writers queue here instead of deadlocking later."""
        _ = self.seq

    def finish(self) -> Summary:
        s = self.summary
        if s.chat_ids or s.message_ids:
            self.tx.touched(chat_ids=s.chat_ids, message_ids=s.message_ids)
        return s

    def _statement(self, name: str, build):
        """A hot statement built once per app (SQLAlchemy's building is a third of a small statement's cost)."""
        return built(self.t["messages"], ("inbound", name), build)

    def _driver_statement(self, name: str, build, column_keys: tuple = ()) -> DriverStatement:
        """A hot statement inside the write lock, compiled once and run on the driver (``driver_sql``)."""
        dialect = self.conn.dialect
        return built(self.t["messages"], ("inbound-driver", name, dialect.name, column_keys),
                     lambda: DriverStatement(build(), dialect, column_keys))

    def _any_parked(self):
        """1 when any item is parked, else 0: a scalar for a statement run under the change counter."""
        p = self.t["parked"]
        return sa.select(sa.func.count()).select_from(sa.select(p.c.id).limit(1).subquery()).scalar_subquery()

    def _insert_wazzup_messages(self, rows: list[dict]) -> set[int]:
        """Insert-or-ignore the messages' Wazzup rows; the host ids of the rows this transaction won.

        One message (the usual delivery) also brings back whether anything is parked, so that
        ``apply_parked`` needs no statement of its own (on PostgreSQL, one round trip less). The
        insert runs under the change counter, which every writer that parks holds too, so what it
        sees is current.
        """
        wm = self.t["messages"]
        if len(rows) != 1:
            return insert_ignore_returning(self.conn, wm, rows, wm.c.message_id)
        self.lock()
        stmt = self._driver_statement(
            "insert_wazzup_message", lambda: dialect_insert(self.conn, wm).on_conflict_do_nothing()
            .returning(wm.c.message_id, self._any_parked().label("any_parked")), tuple(rows[0]))
        won = stmt.rows(self.conn, rows[0])
        if won and not won[0][1]:
            self._nothing_parked = True
        return {r[0] for r in won}

    # ------------------------------------------------------------------ channels, quarantine

    def store_channels(self, updates: list[ChannelUpdate]) -> None:
        latest: dict[str, ChannelUpdate] = {}
        for u in updates:
            held = latest.get(u.channel_id)
            if held is None or (u.at or self.now) >= (held.at or self.now):
                latest[u.channel_id] = u
        rows = [{"channel_id": u.channel_id, "state": u.state, "tier": u.tier, "transport": u.transport,
                 "updated_at": u.at or self.now} for _, u in sorted(latest.items())]
        # An older report never overwrites a newer one (Wazzup does not promise the order).
        upsert(self.conn, self.t["channels"], rows, key=["channel_id"], update=["state", "tier", "transport", "updated_at"],
               where=lambda t, ex: t.c.updated_at <= ex.updated_at, keep_when_null=["tier", "transport"])
        self.summary.channels += len(rows)

    def store_quarantine(self, items: list[Quarantined]) -> None:
        if not items:
            return
        self.conn.execute(sa.insert(self.t["quarantine"]), [
            {"section": q.section, "wazzup_message_id": q.message_id, "reason": q.reason,
             "item": raw_json(q.raw), "received_at": self.now} for q in items])
        self.summary.quarantined += len(items)
        for q in items:
            log.warning("webhook item quarantined", extra={"context": {
                "section": q.section, "wazzup_message_id": q.message_id, "reason": q.reason[:300]}})

    # ------------------------------------------------------------------ messages

    def store_messages(self, items: list[Message], allow_park: bool = True,
                       prefetched: "Prefetched | None" = None) -> None:
        if not items:
            return
        newest = newest_copies(items)
        if prefetched is None:
            existing = self._stored_messages(newest)
        else:
            existing = self._stored_after_prefetch(newest, prefetched)
        # Sends these echoes settle: their Wazzup ids are new to us, and statuses may be parked under them.
        given = self._match_own_sends(newest, existing) + self._adopt_echoes_of_sends_without_id(
            newest, existing, wait_for_sends_in_flight=allow_park)
        fresh = [m for wid, m in sorted(newest.items()) if wid not in existing]
        known = [m for wid, m in sorted(newest.items()) if wid in existing]

        chat_of = self._ensure_chats(fresh, prefetched.chats if prefetched else None) if fresh else {}
        if allow_park and fresh:
            fresh = self._park_echoes_of_sends_in_flight(fresh, chat_of)
        inserted = self._insert_messages(fresh, chat_of, apply_lost_edits=prefetched is not None)
        self._update_known(known, existing)
        if inserted or given:
            # Statuses (or echoes) that were waiting for these ids.
            self.apply_parked(inserted + given)

    def _stored_after_prefetch(self, newest: dict[str, Message], prefetched: "Prefetched") -> dict[str, tuple]:
        """Stored rows of this delivery's messages, reusing what the lookup before the transaction found.

        A message found then is still stored (messages are never deleted); its row is reused as is for
        a plain copy, which changes nothing. Echoes (they settle sends and carry statuses) and edits or
        deletions need the row as it is now, so they are looked up again. A message not found then
        may have been stored since: the insert-or-ignore finds that out (``_insert_messages``).
        """
        existing, again = {}, {}
        for wid, msg in newest.items():
            if msg.is_echo or (wid in prefetched.stored and (msg.is_edited or msg.is_deleted)):
                again[wid] = msg
            elif wid in prefetched.stored:
                existing[wid] = prefetched.stored[wid]
        if again:
            existing.update(self._stored_messages(again))
        return existing

    def _stored_select(self) -> sa.Select:
        wm, m = self.t["messages"], self.messages
        return (sa.select(wm.c.message_id, wm.c.wazzup_message_id, wm.c.chat_id, wm.c.version_at,
                          m.c.status, m.c.text, m.c.previous_text, m.c.edited_at, m.c.deleted_at,
                          m.c.type, m.c.content_uri, m.c.content_name, m.c.content_type, m.c.messenger_at)
                .join(m, m.c.id == wm.c.message_id))

    def _one_stored_message_statement_select(self) -> sa.Select:
        wm = self.t["messages"]
        return self._stored_select().where(
            wm.c.wazzup_message_id == sa.bindparam("b_wid", type_=wm.c.wazzup_message_id.type))

    def _one_stored_message_statement(self) -> DriverStatement:
        """The stored row of one Wazzup id, ``b_wid`` (``=``, on the driver: the usual delivery's lookup)."""
        return self._driver_statement("stored_message", self._one_stored_message_statement_select)

    def _one_stored_message(self, wid: str) -> dict[str, tuple]:
        return {r.wazzup_message_id: r for r in self._one_stored_message_statement().rows(self.conn, {"b_wid": wid})}

    def _one_chat_select(self) -> sa.Select:
        wc = self.t["chats"]
        return self._chats_select().where(
            wc.c.channel_id == sa.bindparam("b_channel", type_=wc.c.channel_id.type),
            wc.c.chat_type == sa.bindparam("b_type", type_=wc.c.chat_type.type),
            wc.c.wazzup_chat_id == sa.bindparam("b_chat", type_=wc.c.wazzup_chat_id.type))

    def _one_chat_statement(self) -> DriverStatement:
        """The chat of one (channel, chat type, chat id) key (``=``, on the driver)."""
        return self._driver_statement("find_chat", self._one_chat_select)

    @staticmethod
    def _chat_found(key: tuple, rows) -> dict[tuple, dict]:
        return {key: rows[0]._asdict()} if rows else {}

    def lookup_one(self, wid: str, key: tuple) -> tuple[dict[str, tuple], dict[tuple, dict]]:
        """One message's stored row and, when it is not stored, its chat.

        Over a network (PostgreSQL): both in one statement, one round trip. On SQLite, where a
        statement costs no round trip, the chat is looked up only for a new message (a redelivery
        needs no chat)."""
        chat_values = {"b_channel": key[0], "b_type": key[1], "b_chat": key[2]}
        if self.conn.dialect.name == "sqlite":
            stored = self._one_stored_message(wid)
            return stored, {} if stored else self._chat_found(key, self._one_chat_statement().rows(self.conn, chat_values))
        stmt, stored_row, chat_row = self._one_message_and_chat_statement()
        (row,) = stmt.rows(self.conn, {"b_wid": wid, **chat_values})
        n = len(stored_row._fields)
        if row[0] is not None:  # the stored message's id (a primary key: never NULL when found)
            return {wid: stored_row._make(row[:n])}, {}
        return {}, ({} if row[n] is None else {key: chat_row._make(row[n:])._asdict()})

    def _one_message_and_chat_statement(self):
        """``(statement, stored row type, chat row type)``: the stored row of one Wazzup id and the chat
        of one key side by side in one row (NULLs for a miss; both keys are unique)."""
        def build():
            stored = self._one_stored_message_statement_select().subquery("stored")
            chat = self._one_chat_select().subquery("chat")
            one = sa.select(sa.literal_column("1").label("one")).subquery("one")
            stmt = (sa.select(*[c.label(f"s_{c.name}") for c in stored.c], *[c.label(f"c_{c.name}") for c in chat.c])
                    .select_from(one.outerjoin(stored, sa.true()).outerjoin(chat, sa.true())))
            return (DriverStatement(stmt, self.conn.dialect), namedtuple("StoredRow", [c.name for c in stored.c]),
                    namedtuple("ChatRow", [c.name for c in chat.c]))
        return built(self.t["messages"], ("inbound-driver", "stored_message_and_chat", self.conn.dialect.name), build)

    def _stored_messages(self, by_id) -> dict[str, tuple]:
        wm = self.t["messages"]
        found = {}
        if len(by_id) == 1:  # the usual delivery
            (wid,) = by_id
            return self._one_stored_message(wid)
        stmt = self._driver_statement("stored_messages", lambda: self._stored_select().where(
            one_of(wm.c.wazzup_message_id, "b_wids", self.conn.dialect)))
        for part in _chunks(sorted(by_id)):
            found.update({r.wazzup_message_id: r for r in stmt.rows(self.conn, {"b_wids": part})})
        return found

    def _match_own_sends(self, by_id: dict[str, Message], existing: dict) -> list[str]:
        """An echo naming our crmMessageId settles that send (it is ours: no second copy); returns
        the Wazzup ids given to sends."""
        wm = self.t["messages"]
        echoes = {m.crm_message_id: m for wid, m in by_id.items()
                  if m.is_echo and m.crm_message_id and wid not in existing}
        if not echoes:
            return []
        rows = self.conn.execute(sa.select(wm.c.message_id, wm.c.crm_message_id).where(
            wm.c.crm_message_id.in_(sorted(echoes)), wm.c.wazzup_message_id.is_(None))).all()
        if not rows:
            return []
        self.conn.execute(sa.update(wm).where(wm.c.message_id == sa.bindparam("b_id"))
                          .values(wazzup_message_id=sa.bindparam("b_wid")),
                          [{"b_id": r.message_id, "b_wid": echoes[r.crm_message_id].message_id}
                           for r in sorted(rows, key=lambda r: r.message_id)])
        given = [echoes[r.crm_message_id].message_id for r in rows]
        existing.update(self._stored_messages(dict.fromkeys(given, 1)))
        return given

    def _adopt_echoes_of_sends_without_id(self, by_id: dict[str, Message], existing: dict,
                                          wait_for_sends_in_flight: bool = True) -> list[str]:
        """An echo whose content equals a send of ours that settled without a Wazzup id is that send.

        The send went out (Wazzup said REPEATED_CRM_MESSAGE_ID), or may have (unknown); the echo both
        proves it and brings the id, so it settles the send instead of becoming a second copy.
        Content alone is a weak match ("OK"), so:
        - not in a chat with a send in flight: the echo may be that send's, and is parked until its
          answer comes (``_park_echoes_of_sends_in_flight``); unless it is being released from
          parking (``wait_for_sends_in_flight`` False), when waiting is over;
        - only a send whose attempts could have produced the echo: Wazzup's time for the echo lies
          between the send's first attempt and its settling, give or take ``ECHO_CLOCK_SKEW``;
        - the latest such send first: an echo follows the send that produced it closely.
        """
        echoes = [m for wid, m in sorted(by_id.items()) if m.is_echo and wid not in existing
                  and (m.text is not None or m.content_uri is not None)]
        if not echoes:
            return []
        wm, m, wc, o = self.t["messages"], self.messages, self.t["chats"], self.t["outbox"]
        keys = sorted({e.chat_key for e in echoes})
        candidates: dict[tuple, list] = {}
        busy: set[tuple] = set()
        for part in _chunks(keys):
            rows = self.conn.execute(
                sa.select(wm.c.message_id, m.c.status, m.c.text, m.c.content_uri, wc.c.channel_id, wc.c.chat_type,
                          wc.c.wazzup_chat_id, o.c.first_attempt_at, o.c.updated_at)
                .join(m, m.c.id == wm.c.message_id).join(wc, wc.c.chat_id == wm.c.chat_id)
                .outerjoin(o, o.c.message_id == wm.c.message_id)
                .where(wm.c.wazzup_message_id.is_(None), m.c.direction == "out",
                       m.c.status.in_(SETTLED_WITHOUT_ID + IN_FLIGHT),
                       sa.tuple_(wc.c.channel_id, wc.c.chat_type, wc.c.wazzup_chat_id).in_(part))
                .order_by(wm.c.message_id.desc()))
            for r in rows:
                key = (r.channel_id, r.chat_type, r.wazzup_chat_id)
                if r.status in IN_FLIGHT:
                    busy.add(key)
                else:
                    candidates.setdefault(key, []).append(r)
        adopted = []
        for echo in echoes:
            if wait_for_sends_in_flight and echo.chat_key in busy:
                continue
            sends = candidates.get(echo.chat_key, [])
            match = next((r for r in sends if ((echo.text is not None and r.text == echo.text)
                          or (echo.content_uri is not None and r.content_uri == echo.content_uri))
                          and _could_be_its_echo(r, echo)), None)
            if match is not None:
                sends.remove(match)
                adopted.append({"b_id": match.message_id, "b_wid": echo.message_id})
        if not adopted:
            return []
        self.conn.execute(sa.update(wm).where(wm.c.message_id == sa.bindparam("b_id"), wm.c.wazzup_message_id.is_(None))
                          .values(wazzup_message_id=sa.bindparam("b_wid")), adopted)
        log.info("echoes settled sends that had no Wazzup id", extra={"context": {
            "message_ids": [a["b_id"] for a in adopted], "wazzup_message_ids": [a["b_wid"] for a in adopted]}})
        existing.update(self._stored_messages({a["b_wid"]: 1 for a in adopted}))
        return [a["b_wid"] for a in adopted]

    def _ensure_chats(self, items: list[Message], prefetched: dict | None = None) -> dict[tuple, int]:
        """The host chat of each (channel, chat type, chat id), created once even under races.

        ``prefetched``: chats found before the transaction (chats are never deleted, so they still
        exist); only the others are looked up here."""
        wc, c = self.t["chats"], self.chats
        latest: dict[tuple, Message] = {}
        for msg in items:
            held = latest.get(msg.chat_key)
            if held is None or (msg.at or self.now) >= (held.at or self.now):
                latest[msg.chat_key] = msg
        keys = sorted(latest)
        if prefetched is None:
            found = self._find_chats(keys)
        else:
            found = {k: dict(prefetched[k]) for k in keys if k in prefetched}
            found.update(self._find_chats([k for k in keys if k not in found]))

        missing = [k for k in keys if k not in found]
        if missing:
            new_rows = [self._new_chat_row(latest[k]) for k in missing]
            created = insert_returning_ids(self.conn, c, new_rows)
            mine = dict(zip(missing, created))
            won = insert_ignore_returning(self.conn, wc, [
                {"chat_id": mine[k], "channel_id": k[0], "chat_type": k[1], "wazzup_chat_id": k[2],
                 "contact_name": latest[k].contact_name} for k in missing], wc.c.chat_id)
            # The chats we created are known as written; only those another worker won are read back.
            winners = self._find_chats([k for k in missing if mine[k] not in won])
            for k, row in zip(missing, new_rows):
                if mine[k] in won:
                    winners[k] = {"chat_id": mine[k], "channel_id": k[0], "chat_type": k[1], "wazzup_chat_id": k[2],
                                  "contact_name": latest[k].contact_name, "avatar_uri": row["avatar_uri"],
                                  "last_message_at": row["last_message_at"],
                                  "last_activity_at": row["last_activity_at"]}
            lost = [cid for k, cid in mine.items() if winners[k]["chat_id"] != cid]
            if lost:  # another worker created the same chat first: drop our copy, use theirs
                self.conn.execute(sa.delete(c).where(c.c.id.in_(lost)))
            for k in missing:
                found[k] = winners[k]
                if winners[k]["chat_id"] == mine[k]:
                    self.summary.chats_created.append(mine[k])
                    self.summary.chat_ids.add(mine[k])

        self._refresh_contacts(latest, found)
        return {k: row["chat_id"] for k, row in found.items()}

    def _chats_select(self) -> sa.Select:
        wc, c = self.t["chats"], self.chats
        return (sa.select(wc.c.chat_id, wc.c.channel_id, wc.c.chat_type, wc.c.wazzup_chat_id,
                          wc.c.contact_name, c.c.avatar_uri, c.c.last_message_at, c.c.last_activity_at)
                .join(c, c.c.id == wc.c.chat_id))

    def _find_chats(self, keys) -> dict[tuple, dict]:
        wc = self.t["chats"]
        found = {}
        if not keys:
            return found
        if len(keys) == 1:  # the usual delivery: ``=`` spares the per-call rewrite of three expanding INs
            (key,) = keys
            rows = self._one_chat_statement().rows(self.conn, {"b_channel": key[0], "b_type": key[1], "b_chat": key[2]})
            return self._chat_found(key, rows)
        for part in _chunks(keys):
            # One IN per key column, not a row-value IN: SQLite answers ``(a, b, c) IN (VALUES ...)``
            # of two or more keys by scanning every chat, while per-column INs seek the unique index.
            # The result may hold other combinations of those values: only the asked keys are kept.
            wanted = set(part)
            dialect = self.conn.dialect
            stmt = self._driver_statement("find_chats", lambda: self._chats_select().where(
                one_of(wc.c.channel_id, "b_channels", dialect), one_of(wc.c.chat_type, "b_types", dialect),
                one_of(wc.c.wazzup_chat_id, "b_chats", dialect)))
            rows = stmt.rows(self.conn, {"b_channels": sorted({k[0] for k in part}),
                                         "b_types": sorted({k[1] for k in part}),
                                         "b_chats": sorted({k[2] for k in part})})
            for r in rows:
                key = (r.channel_id, r.chat_type, r.wazzup_chat_id)
                if key in wanted:
                    found[key] = r._asdict()
        return found

    def _new_chat_row(self, msg: Message) -> dict:
        phone = chat_phone(msg)
        return {"type": CHAT_TYPE, "title": (msg.contact_name or phone or msg.chat_id)[:300], "phone": phone,
                "avatar_uri": msg.avatar_uri, "unread_count": 0, "last_message_at": None,
                "last_message_preview": "", "last_activity_at": self.now, "created_at": self.now,
                "change_seq": self.seq}

    def _contact_changes(self, latest: dict[tuple, Message], found: dict[tuple, dict]) -> list[tuple]:
        """``(chat id, new name or None, new avatar or None)`` of each chat whose contact was renamed
        or got a new avatar (incoming messages only); ``found``'s rows are updated to match."""
        changes = []
        for key, msg in latest.items():
            row = found[key]
            if msg.is_echo or row["chat_id"] in self.summary.chats_created:
                continue
            name = _contact_name(msg)
            name = name if name != row["contact_name"] else None
            avatar = msg.avatar_uri if msg.avatar_uri and msg.avatar_uri != row["avatar_uri"] else None
            if name or avatar:
                changes.append((row["chat_id"], name, avatar))
                row["contact_name"] = name or row["contact_name"]
                row["avatar_uri"] = avatar or row["avatar_uri"]
        return changes

    def _refresh_contacts(self, latest: dict[tuple, Message], found: dict[tuple, dict]) -> None:
        """A contact renamed or with a new avatar: the chat follows (incoming messages only)."""
        wc, c = self.t["chats"], self.chats
        changes = self._contact_changes(latest, found)
        if not changes:
            return
        changes.sort()
        self.conn.execute(
            sa.update(c).where(c.c.id == sa.bindparam("b_id")).values(
                title=sa.func.coalesce(sa.bindparam("b_title", type_=c.c.title.type), c.c.title),
                avatar_uri=sa.func.coalesce(sa.bindparam("b_avatar", type_=c.c.avatar_uri.type),
                                            c.c.avatar_uri),
                change_seq=sa.bindparam("b_seq", type_=c.c.change_seq.type)),
            [{"b_id": cid, "b_title": name, "b_avatar": avatar, "b_seq": self.seq}
             for cid, name, avatar in changes])
        renamed = [{"b_id": cid, "b_name": name} for cid, name, _ in changes if name]
        if renamed:
            self.conn.execute(sa.update(wc).where(wc.c.chat_id == sa.bindparam("b_id"))
                              .values(contact_name=sa.bindparam("b_name")), renamed)
        self.summary.chat_ids.update(cid for cid, _, _ in changes)

    def _park_echoes_of_sends_in_flight(self, fresh: list[Message], chat_of: dict) -> list[Message]:
        """An echo with an unknown id where we have a send in flight may be that send: park it."""
        echo_chats = {chat_of[m.chat_key] for m in fresh if m.is_echo}
        if not echo_chats:
            return fresh
        busy = self._chats_with_sends_in_flight(echo_chats)
        parked = [m for m in fresh if m.is_echo and chat_of[m.chat_key] in busy]
        if not parked:
            return fresh
        self._park([("echo", m.message_id, chat_of[m.chat_key], f"e:{m.message_id}", m.raw) for m in parked])
        parked_ids = {m.message_id for m in parked}  # ids are unique within fresh; cheap to compare
        return [m for m in fresh if m.message_id not in parked_ids]

    def _chats_with_sends_in_flight(self, chat_ids) -> set[int]:
        wm, m = self.t["messages"], self.messages
        busy = set()
        for part in _chunks(sorted(chat_ids)):
            busy.update(self.conn.execute(
                sa.select(wm.c.chat_id).distinct().join(m, m.c.id == wm.c.message_id)
                .where(wm.c.chat_id.in_(part), wm.c.wazzup_message_id.is_(None), m.c.status.in_(IN_FLIGHT))
            ).scalars())
        return busy

    def _message_row(self, msg: Message, chat_id: int, stamped: bool = True) -> dict:
        """The host row of a new message; ``stamped=False``: without ``change_seq`` (a one-statement
        write takes the counter inside its statement)."""
        at = msg.at or self.now
        text = msg.text
        if not text and not msg.content_uri:
            text = placeholder(msg)
        row = {
            "chat_id": chat_id, "direction": "out" if msg.is_echo else "in", "type": msg.type, "text": text,
            **content_fields(msg.content_uri),
            "author_name": msg.author_name if msg.is_echo else None, "messenger_at": at,
            "created_at": self.now, "edited_at": self.now if msg.is_edited else None,
            "deleted_at": self.now if msg.is_deleted else None,
            "previous_text": msg.old_text if (msg.is_edited or msg.is_deleted) else None,
            "error_code": None, "error_text": None,
            **{col: None for col in TIMESTAMP_COLUMN.values()},
        }
        if stamped:
            row["change_seq"] = self.seq
        if not msg.is_echo:
            row["status"] = "inbound"
        else:  # typed on the phone or in Wazzup's window: an outgoing message with its ticks
            status = FROM_WAZZUP.get(msg.status or "sent", "sent")
            row["status"] = status if status != "inbound" else "sent"
            row["sent_at"] = at
            row[TIMESTAMP_COLUMN[row["status"]]] = at
            if row["status"] == "failed":
                row["error_code"], row["error_text"] = msg.error_code, msg.error_text
        return row

    def _insert_messages(self, fresh: list[Message], chat_of: dict, apply_lost_edits: bool = False) -> list[str]:
        """Insert the messages not stored yet; returns the Wazzup ids this transaction stored.

        ``apply_lost_edits``: the stored rows were looked up before this transaction, so a message
        another delivery stored since is lost here; if this copy edits or deletes it, the change is
        applied to the stored row as ``_update_known`` would have.
        """
        if not fresh:
            return []
        m = self.messages
        if len(fresh) == 1 and self.conn.dialect.name == "postgresql":
            # The usual delivery on PostgreSQL: message, Wazzup row and chat in one statement.
            mine, won = self._store_one_message_at_once(fresh[0], chat_of[fresh[0].chat_key])
            followed = True
        else:
            ids = insert_returning_ids(self.conn, m, [self._message_row(x, chat_of[x.chat_key]) for x in fresh])
            mine = {x.message_id: host_id for x, host_id in zip(fresh, ids)}
            # The rows this insert-or-ignore returns are exactly the ones we won (no re-select).
            won = self._insert_wazzup_messages([
                {"message_id": mine[x.message_id], **self._wazzup_row(x, chat_of[x.chat_key])} for x in fresh])
            followed = False
        lost = [host_id for host_id in mine.values() if host_id not in won]
        if lost:  # another worker stored the same message first: drop our copy
            self.conn.execute(sa.delete(m).where(m.c.id.in_(lost)))
        stored = [x for x in fresh if mine[x.message_id] in won]
        self.summary.new.extend(x.message_id for x in stored)
        # By id: comparing Message dataclasses field by field made this quadratic in the delivery's size.
        stored_ids = {x.message_id for x in stored}
        lost_copies = [x for x in fresh if x.message_id not in stored_ids]
        changes = [x for x in lost_copies if x.is_edited or x.is_deleted] if apply_lost_edits else []
        if changes:
            self._update_known(changes, self._stored_messages({x.message_id: x for x in changes}))
        changed = {x.message_id for x in changes}
        self.summary.duplicates.extend(x.message_id for x in lost_copies if x.message_id not in changed)
        self.summary.message_ids.update(mine[x.message_id] for x in stored)
        if followed:
            self.summary.chat_ids.update(chat_of[x.chat_key] for x in stored)
        else:
            self._follow_chats(stored, chat_of)
        return [x.message_id for x in stored]

    def _wazzup_row(self, msg: Message, chat_id: int) -> dict:
        """The plugin's row of a new message, but for the host id it belongs to (``message_id``)."""
        return {"chat_id": chat_id, "wazzup_message_id": msg.message_id, "crm_message_id": None,
                "is_echo": msg.is_echo, "sent_from_app": msg.sent_from_app, "author_id": msg.author_id,
                "ref_message_id": msg.ref_message_id, "version_at": msg.at or self.now}

    def _store_one_message_at_once(self, msg: Message, chat_id: int) -> tuple[dict[str, int], set[int]]:
        """PostgreSQL: insert one message, insert-or-ignore its Wazzup row and follow its chat, in one statement.

        The separate statements cost a round trip each, and on a loopback connection a round trip
        costs more than the statement. The chat follows only if the Wazzup row went in (another
        delivery may have stored the same message since the lookup): then, as on the general path,
        our host row is deleted by the caller. The statement also says whether anything is parked
        (it runs under the change counter, as ``_insert_wazzup_messages`` does).
        Returns ``({wazzup id: our host id}, {host id if ours won})``.
        """
        row, values = self._one_message_values(msg, chat_id)
        stmt = self._driver_statement(("store_one_at_once", tuple(row)),
                                      lambda: self._one_message_at_once_statement(tuple(row)))
        ((host_id, won, _followed, any_parked),) = stmt.rows(self.conn, values)
        if won is not None and not any_parked:
            self._nothing_parked = True
        return {msg.message_id: host_id}, ({won} if won is not None else set())

    def _one_message_values(self, msg: Message, chat_id: int | None, stamped: bool = True) -> tuple[dict, dict]:
        """``(host row, parameters)`` of the one-message statements: the host row as ``m_*``, the
        Wazzup row as ``w_*``, the chat's follow-up as ``b_*`` (``stamped``: see ``_message_row``;
        ``chat_id`` None: the statement finds the chat itself)."""
        row = self._message_row(msg, chat_id, stamped)
        values = {f"m_{k}": v for k, v in row.items()}
        values.update({f"w_{k}": v for k, v in self._wazzup_row(msg, chat_id).items()})
        values.update(self._chat_follow_values(chat_id, [msg], stamped))
        return row, values

    def _one_message_at_once_statement(self, message_columns: tuple[str, ...]) -> sa.Select:
        m, wm, c = self.messages, self.t["messages"], self.chats
        new = (sa.insert(m).values({k: sa.bindparam(f"m_{k}", type_=m.c[k].type) for k in message_columns})
               .returning(m.c.id).cte("new_message"))
        won = (dialect_insert(self.conn, wm).from_select(
            ["message_id", *WAZZUP_COLUMNS], sa.select(new.c.id, *_selected_parameters(wm, "w_", WAZZUP_COLUMNS)))
            .on_conflict_do_nothing().returning(wm.c.message_id).cte("won"))
        followed = (self._chat_follow_update().where(sa.exists(sa.select(won.c.message_id)))
                    .returning(c.c.id).cte("followed"))
        # ``followed`` is selected although nobody reads it: SQLAlchemy leaves out a CTE the
        # statement does not reference, and PostgreSQL runs every data-modifying CTE it is given.
        return sa.select(new.c.id, sa.select(won.c.message_id).scalar_subquery().label("won"),
                         sa.select(followed.c.id).scalar_subquery().label("followed"),
                         self._any_parked().label("any_parked"))

    def store_in_one_statement(self, msg: Message) -> "OneStatement":
        """PostgreSQL, in ``db.write_one_statement()``: the usual delivery (one new incoming message)
        in one statement, its lookups included: one round trip. The statement finds the chat and
        whether the message is stored; only for a new message in a known chat whose contact is
        unchanged does it take the counter (see ``_in_one_statement``) and write. Anything else it
        leaves to the general path, having written nothing and locked nothing."""
        row, values = self._one_message_values(msg, None, stamped=False)
        values.update(b_channel=msg.chat_key[0], b_type=msg.chat_key[1], b_chat=msg.chat_key[2],
                      b_name=_contact_name(msg), b_avatar=msg.avatar_uri or None)
        stmt = self._driver_statement(("in_one_statement", tuple(row)), lambda: self._in_one_statement(tuple(row)))
        ((stored_id, chat_id, seq, seen, host_id, _followed, parked),) = stmt.rows(self.conn, values)
        if stored_id is not None:
            return OneStatement("stored_before")
        if host_id is None:  # no such chat, a new contact name or avatar, no counter yet, or a race lost
            return OneStatement("general")
        self.summary.new.append(msg.message_id)
        self.summary.message_ids.add(host_id)
        self.summary.chat_ids.add(chat_id)
        self.finish()
        return OneStatement("stored", current=seq == seen + 1, parked=bool(parked))

    def _in_one_statement(self, message_columns: tuple[str, ...]) -> sa.Select:
        """``WITH chat AS (the chat of the key, if its contact is unchanged), stored AS (the message's
        Wazzup row), change_seq AS (UPDATE counter … only if a chat and no stored row), won AS
        (INSERT INTO wazzup_messages … SELECT nextval(…) FROM change_seq, chat ON CONFLICT DO NOTHING),
        new_message AS (INSERT INTO messages … SELECT … FROM won, change_seq, chat), followed AS
        (UPDATE chats … WHERE EXISTS (new_message))``.

        The Wazzup row goes first, with the host id drawn from the host's sequence: the statement
        commits by itself, so a message another delivery stored since its snapshot must leave no host
        row behind (nothing could delete it afterwards in the same transaction). Foreign keys are
        checked at the end of the statement, when the host row exists. Every write depends on the
        counter's row, so the counter is taken before anything else is written, and nothing at all is
        written (nor the counter locked) when the lookups send the delivery to the general path.
        """
        m, wm, wc, c = self.messages, self.t["messages"], self.t["chats"], self.chats
        name = sa.bindparam("b_name", type_=wc.c.contact_name.type)
        avatar = sa.bindparam("b_avatar", type_=c.c.avatar_uri.type)
        chat = (sa.select(wc.c.chat_id).join(c, c.c.id == wc.c.chat_id).where(
            wc.c.channel_id == sa.bindparam("b_channel", type_=wc.c.channel_id.type),
            wc.c.chat_type == sa.bindparam("b_type", type_=wc.c.chat_type.type),
            wc.c.wazzup_chat_id == sa.bindparam("b_chat", type_=wc.c.wazzup_chat_id.type),
            # A contact's new name or avatar renames the chat: the general path's work.
            sa.or_(name.is_(None), wc.c.contact_name == name), sa.or_(avatar.is_(None), c.c.avatar_uri == avatar))
            .cte("chat"))
        stored = (sa.select(wm.c.message_id)
                  .where(wm.c.wazzup_message_id == sa.bindparam("w_wazzup_message_id",
                                                                type_=wm.c.wazzup_message_id.type))
                  .cte("stored"))
        seq = self.tx.change_seq_cte(only_if=sa.and_(sa.exists(sa.select(chat.c.chat_id)),
                                                     ~sa.exists(sa.select(stored.c.message_id))))
        (pk,) = m.primary_key.columns
        next_id = sa.func.nextval(sa.func.pg_get_serial_sequence(sa.literal(m.fullname), sa.literal(pk.name)))
        wazzup_columns = [k for k in WAZZUP_COLUMNS if k != "chat_id"]
        won = (dialect_insert(self.conn, wm).from_select(
            ["message_id", "chat_id", *wazzup_columns],
            sa.select(next_id, chat.c.chat_id, *_selected_parameters(wm, "w_", wazzup_columns))
            .select_from(seq.join(chat, sa.true())))
            .on_conflict_do_nothing().returning(wm.c.message_id, wm.c.chat_id).cte("won"))
        host_columns = [k for k in message_columns if k != "chat_id"]
        new = (sa.insert(m).from_select(
            [pk.name, "chat_id", *host_columns, "change_seq"],
            sa.select(won.c.message_id, won.c.chat_id, *_selected_parameters(m, "m_", host_columns), seq.c.value)
            .select_from(won.join(seq, sa.true())))
            .returning(m.c.id).cte("new_message"))
        followed = (self._chat_follow_update(seq=sa.select(seq.c.value).scalar_subquery(),
                                             chat_id=sa.select(chat.c.chat_id).scalar_subquery())
                    .where(sa.exists(sa.select(new.c.id))).returning(c.c.id).cte("followed"))
        p = self.t["parked"]
        parked = sa.exists().where(p.c.wazzup_message_id == sa.bindparam("w_wazzup_message_id"))
        # One row whatever happened: the lookups' findings, and what was written (NULLs when nothing).
        one = sa.select(sa.literal_column("1").label("one")).subquery("one")
        return (sa.select(sa.select(stored.c.message_id).scalar_subquery().label("stored_id"),
                          sa.select(chat.c.chat_id).scalar_subquery().label("chat_id"),
                          seq.c.value.label("seq"), seq.c.seen,
                          sa.select(new.c.id).scalar_subquery().label("host_id"),
                          sa.select(followed.c.id).scalar_subquery().label("followed"), parked.label("parked"))
                .select_from(one.outerjoin(seq, sa.true())))

    def parked_for(self, wazzup_message_id: str) -> bool:
        """Whether anything is parked under this Wazzup id (one indexed look)."""
        p = self.t["parked"]
        stmt = self._driver_statement("parked_for", lambda: sa.select(p.c.id).where(
            p.c.wazzup_message_id == sa.bindparam("b_wid", type_=p.c.wazzup_message_id.type)).limit(1))
        return bool(stmt.rows(self.conn, {"b_wid": wazzup_message_id}))

    def _chat_follow_values(self, chat_id: int, msgs: list[Message], stamped: bool = True) -> dict:
        """Parameters of ``_chat_follow_update`` for one chat and the messages it got (``stamped=False``:
        without ``b_seq``, for a statement that takes the counter itself)."""
        last = max(msgs, key=lambda x: x.at or self.now)
        text = last.text if last.text else (None if last.content_uri else placeholder(last))
        values = {"b_id": chat_id, "b_unread": sum(1 for x in msgs if not x.is_echo), "b_last_at": last.at or self.now,
                  "b_preview": preview(text, last.type, content_name(last.content_uri))}
        if stamped:
            values["b_seq"] = self.seq
        return values

    def _chat_follow_update(self, seq=None, chat_id=None) -> sa.Update:
        """Last message, preview, activity and unread count of one chat (``b_*`` parameters).

        Relative to the row as it is when the update runs (never to a copy read earlier): a delivery
        may look its chats up before its write transaction, and another may have moved them since.
        ``seq``: an expression for ``change_seq`` (default: the ``b_seq`` parameter); ``chat_id``: one
        for the chat's id (default: the ``b_id`` parameter).
        """
        c = self.chats
        last_at = sa.bindparam("b_last_at", type_=c.c.last_message_at.type)
        newer = sa.or_(c.c.last_message_at.is_(None), c.c.last_message_at <= last_at)
        # Every SET expression sees the row as it was before this UPDATE (SQLite and PostgreSQL).
        return sa.update(c).where(c.c.id == (sa.bindparam("b_id") if chat_id is None else chat_id)).values(
            unread_count=c.c.unread_count + sa.bindparam("b_unread", type_=sa.Integer),
            last_message_at=sa.case((newer, last_at), else_=c.c.last_message_at),
            last_message_preview=sa.case(
                (newer, sa.bindparam("b_preview", type_=c.c.last_message_preview.type)),
                else_=c.c.last_message_preview),
            last_activity_at=sa.case((c.c.last_activity_at < last_at, last_at), else_=c.c.last_activity_at),
            change_seq=sa.bindparam("b_seq", type_=c.c.change_seq.type) if seq is None else seq)

    def _follow_chats(self, stored: list[Message], chat_of: dict) -> None:
        """Follow each chat that got messages (``_chat_follow_update``), one executemany."""
        if not stored:
            return
        per_chat: dict[int, list[Message]] = defaultdict(list)
        for msg in stored:
            per_chat[chat_of[msg.chat_key]].append(msg)
        updates = [self._chat_follow_values(chat_id, msgs) for chat_id, msgs in sorted(per_chat.items())]
        self._driver_statement("follow_chats", self._chat_follow_update).many(self.conn, updates)
        self.summary.chat_ids.update(per_chat)

    def _update_known(self, known: list[Message], existing: dict) -> None:
        """Copies of stored messages: apply edits and deletions; echoes carry statuses too."""
        edits, reports = [], []
        for msg in known:
            row = existing[msg.message_id]
            self.summary.duplicates.append(msg.message_id)
            change = self._edit(msg, row)
            if change:
                edits.append(change)
            if msg.is_echo and msg.status in ("sent", "delivered", "read", "error"):
                reports.append(StatusReport(msg.raw, msg.message_id, msg.status, msg.at, msg.error_code,
                                            msg.error_text))
        if edits:
            m, wm = self.messages, self.t["messages"]
            edits.sort(key=lambda e: e["b_id"])
            self.conn.execute(sa.update(m).where(m.c.id == sa.bindparam("b_id")).values(
                text=sa.bindparam("b_text", type_=m.c.text.type),
                previous_text=sa.bindparam("b_previous", type_=m.c.previous_text.type),
                edited_at=sa.bindparam("b_edited", type_=m.c.edited_at.type),
                deleted_at=sa.bindparam("b_deleted", type_=m.c.deleted_at.type),
                content_uri=sa.bindparam("b_content_uri", type_=m.c.content_uri.type),
                content_name=sa.bindparam("b_content_name", type_=m.c.content_name.type),
                content_type=sa.bindparam("b_content_type", type_=m.c.content_type.type),
                change_seq=sa.bindparam("b_seq", type_=m.c.change_seq.type)), edits)
            self.conn.execute(sa.update(wm).where(wm.c.message_id == sa.bindparam("b_id")).values(
                version_at=sa.bindparam("b_version", type_=wm.c.version_at.type)), edits)
            self._follow_edited_last_messages(edits)
            self.summary.message_ids.update(e["b_id"] for e in edits)
            self.summary.edited.extend(e["wid"] for e in edits)
        if reports:
            self.apply_statuses(reports, allow_park=False)

    def _follow_edited_last_messages(self, edits: list[dict]) -> None:
        """A chat whose last message was edited or deleted shows the new text, or that it was deleted,
        in its preview, and its change reaches pollers: a deleted "my card number is …" must not stay
        in every agent's chat list. A chat whose last message is another one (newer) is left alone."""
        c = self.chats
        updates = [{"b_id": e["chat_id"], "b_at": e["at"], "b_seq": self.seq,
                    "b_preview": DELETED_PREVIEW if e["b_deleted"] is not None
                    else preview(e["b_text"], e["type"], e["b_content_name"])}
                   for e in edits if e["at"] is not None]
        if not updates:
            return
        changed = self.conn.execute(sa.update(c).where(
            c.c.id == sa.bindparam("b_id"),
            c.c.last_message_at == sa.bindparam("b_at", type_=c.c.last_message_at.type)).values(
            last_message_preview=sa.bindparam("b_preview", type_=c.c.last_message_preview.type),
            change_seq=sa.bindparam("b_seq", type_=c.c.change_seq.type)), sorted(updates, key=lambda u: u["b_id"]))
        if changed.rowcount:
            self.summary.chat_ids.update(u["b_id"] for u in updates)

    def _edit(self, msg: Message, row) -> dict | None:
        """The new text/markers for a stored message, or None when this copy is not newer.

        An edit changes the text, the media (a new ``contentUri``: §3.6 lets a message's link be
        replaced, §5.1 delivers it as ``isEdited``), or both. A copy without a link changes no media
        (Wazzup need not repeat it), and its text is compared as for any edit."""
        if not (msg.is_edited or msg.is_deleted) or row.deleted_at is not None:
            return None  # a plain redelivery changes nothing; a deletion is final
        at = msg.at or self.now
        change = {"b_id": row.message_id, "wid": msg.message_id, "b_text": row.text,
                  "b_previous": row.previous_text, "b_edited": row.edited_at, "b_deleted": None,
                  "b_version": row.version_at, "b_seq": self.seq, "b_content_uri": row.content_uri,
                  "b_content_name": row.content_name, "b_content_type": row.content_type,
                  # for the chat's preview, when this is its last message
                  "chat_id": row.chat_id, "at": row.messenger_at, "type": row.type}
        if msg.is_deleted:
            change["b_deleted"] = self.now
            change["b_previous"] = row.previous_text or msg.old_text or row.text
            return change
        # An edit applies when it is newer than what we hold; at equal times (Wazzup may keep the
        # original dateTime) only an edit that starts from our current text is the newer one.
        if row.version_at is not None and row.edited_at is not None:
            if at < row.version_at or (at == row.version_at and msg.old_text != row.text):
                return None
        new_media = msg.content_uri is not None and msg.content_uri != row.content_uri
        if msg.text == row.text and not new_media:
            return None
        if msg.text != row.text:
            change.update(b_text=msg.text, b_previous=msg.old_text if msg.old_text is not None else row.text)
        if new_media:  # text and previous_text stay as they are unless the text changed too
            media = content_fields(msg.content_uri)
            change.update({f"b_{k}": v for k, v in media.items()})
        change.update(b_edited=self.now, b_version=max(at, row.version_at) if row.version_at else at)
        return change

    # ------------------------------------------------------------------ statuses

    def apply_statuses(self, reports: list[StatusReport], allow_park: bool = True) -> None:
        if not reports:
            return
        by_id: dict[str, list[StatusReport]] = defaultdict(list)
        for r in reports:
            by_id[r.message_id].append(r)
        wm, m = self.t["messages"], self.messages
        stamp_cols = sorted(TIMESTAMP_COLUMN.values())
        rows = {}
        for part in _chunks(sorted(by_id)):
            rows.update({r.wazzup_message_id: r for r in self.conn.execute(
                sa.select(wm.c.wazzup_message_id, m.c.id, m.c.status, m.c.edited_at, m.c.error_code,
                          m.c.error_text, *[m.c[col] for col in stamp_cols])
                .join(m, m.c.id == wm.c.message_id).where(wm.c.wazzup_message_id.in_(part)))})

        unknown = [wid for wid in sorted(by_id) if wid not in rows]
        if unknown and allow_park:
            self._park([("status", r.message_id, None, f"s:{r.message_id}:{r.status}", r.raw)
                        for wid in unknown for r in by_id[wid]])
        updates = []
        for wid in sorted(by_id, key=lambda w: rows[w].id if w in rows else 0):
            if wid in rows:
                change = self._status_change(rows[wid], by_id[wid], stamp_cols)
                if change:
                    updates.append(change)
        if not updates:
            return
        self.conn.execute(sa.update(m).where(m.c.id == sa.bindparam("b_id")).values(
            status=sa.bindparam("b_status", type_=m.c.status.type),
            error_code=sa.bindparam("b_error_code", type_=m.c.error_code.type),
            error_text=sa.bindparam("b_error_text", type_=m.c.error_text.type),
            edited_at=sa.bindparam("b_edited_at", type_=m.c.edited_at.type),
            change_seq=sa.bindparam("b_seq", type_=m.c.change_seq.type),
            **{col: sa.bindparam(f"b_{col}", type_=m.c[col].type) for col in stamp_cols}), updates)
        self.summary.statuses_applied += len(updates)
        self.summary.message_ids.update(u["b_id"] for u in updates)

    def _status_change(self, row, reports: list[StatusReport], stamp_cols) -> dict | None:
        status = row.status
        stamps = {col: row._mapping[col] for col in stamp_cols}
        error_code, error_text, edited_at = row.error_code, row.error_text, row.edited_at
        pending = sorted(reports, key=lambda r: (r.at or self.now))
        moved = True
        while moved:  # apply in any order until nothing moves: the result never goes backwards
            moved = False
            for r in pending:
                new = FROM_WAZZUP.get(r.status)
                if new and can_move(status, new):
                    status, moved = new, True
                    stamps[TIMESTAMP_COLUMN[new]] = stamps[TIMESTAMP_COLUMN[new]] or r.at or self.now
                    if new == "failed":
                        error_code, error_text = r.error_code, r.error_text
        for r in pending:
            new = FROM_WAZZUP.get(r.status)
            if r.status == "edited":
                edited_at = edited_at or r.at or self.now
            # A late "delivered" after "read" still records when it was delivered.
            elif DELIVERY_RANK.get(new, 99) <= DELIVERY_RANK.get(status, 0):
                stamps[TIMESTAMP_COLUMN[new]] = stamps[TIMESTAMP_COLUMN[new]] or r.at or self.now
        before = (row.status, row.error_code, row.error_text, row.edited_at,
                  *[row._mapping[c] for c in stamp_cols])
        after = (status, error_code, error_text, edited_at, *[stamps[c] for c in stamp_cols])
        if before == after:
            return None
        return {"b_id": row.id, "b_status": status, "b_error_code": error_code, "b_error_text": error_text,
                "b_edited_at": edited_at, "b_seq": self.seq, **{f"b_{c}": stamps[c] for c in stamp_cols}}

    # ------------------------------------------------------------------ parking

    def _park(self, items) -> None:
        self._nothing_parked = False
        rows = sorted(({"kind": kind, "wazzup_message_id": wid, "chat_id": chat_id, "dedupe_key": key[:200],
                        "item": raw_json(raw), "received_at": self.now}
                       for kind, wid, chat_id, key, raw in items), key=lambda r: r["dedupe_key"])
        insert_ignore(self.conn, self.t["parked"], rows)
        self.summary.parked.extend(r["wazzup_message_id"] for r in rows)
        log.info("webhook items parked until their message is known", extra={"context": {
            "kinds": sorted({r["kind"] for r in rows}),
            "wazzup_message_ids": [r["wazzup_message_id"] for r in rows][:50]}})

    def _take_parked(self, condition, limit: int | None = None) -> list:
        p = self.t["parked"]
        stmt = sa.select(p).where(condition).order_by(p.c.id)
        rows = self.conn.execute(stmt.limit(limit) if limit else stmt).all()
        for part in _chunks([r.id for r in rows]):
            self.conn.execute(sa.delete(p).where(p.c.id.in_(part)))
        return rows

    def _replay(self, rows) -> None:
        echoes = [parse_message(json.loads(r.item)) for r in rows if r.kind == "echo"]
        statuses = [parse_status(json.loads(r.item)) for r in rows if r.kind == "status"]
        self.store_messages(echoes, allow_park=False)
        self.apply_statuses(statuses, allow_park=False)

    def apply_parked(self, wazzup_message_ids) -> None:
        ids = sorted(set(wazzup_message_ids))
        if not ids:
            return
        self.lock()
        p = self.t["parked"]
        # Nearly always nothing is parked: one cheap look (under the counter's lock, which every
        # writer that parks holds too) spares the lookups by id, the chats and the echo release.
        if self._nothing_parked:  # this transaction's own insert saw none, under the same lock
            return
        if not self._driver_statement("any_parked", lambda: sa.select(p.c.id).limit(1)).rows(self.conn):
            return
        rows = []
        for part in _chunks(ids):
            rows.extend(self._take_parked(p.c.wazzup_message_id.in_(part)))
        if rows:
            log.info("parked items applied", extra={"context": {
                "wazzup_message_ids": sorted({r.wazzup_message_id for r in rows})[:50], "count": len(rows)}})
            self._replay(rows)
        # Echoes parked in these chats that were not the send: once no send is in flight there,
        # they were typed on the phone, so they become outgoing messages.
        wm = self.t["messages"]
        chat_ids = set()
        for part in _chunks(ids):
            chat_ids.update(self.conn.execute(sa.select(wm.c.chat_id).where(wm.c.wazzup_message_id.in_(part)))
                            .scalars())
        if chat_ids:
            self.release_echoes(chat_ids)

    def release_echoes(self, chat_ids=None, older_than: datetime | None = None, limit: int = 200) -> None:
        """Parked echoes become outgoing messages once their chat (of ``chat_ids``, else any chat)
        has no send in flight, or once they are older than ``older_than``."""
        p, wm, m = self.t["parked"], self.t["messages"], self.messages
        in_flight = (sa.select(wm.c.message_id).join(m, m.c.id == wm.c.message_id)
                     .where(wm.c.chat_id == p.c.chat_id, wm.c.wazzup_message_id.is_(None),
                            m.c.status.in_(IN_FLIGHT)).exists())
        settled = ~in_flight if chat_ids is None else sa.and_(p.c.chat_id.in_(sorted(chat_ids)), ~in_flight)
        conditions = [settled] if older_than is None else [settled, p.c.received_at < older_than]
        rows = self._take_parked(sa.and_(p.c.kind == "echo", sa.or_(*conditions)), limit)
        if rows:
            log.info("parked echoes released as outgoing messages", extra={"context": {
                "wazzup_message_ids": [r.wazzup_message_id for r in rows][:50]}})
            self._replay(rows)

    def apply_parked_of_known(self, limit: int = 200) -> None:
        """Housekeeping: statuses parked for a message that is stored by now are applied.

        The delivery that stores a message applies what is parked for it; a delivery written in one
        statement looks again in a second transaction, and a process stopped between the two leaves
        such a status behind."""
        p = self.t["parked"]
        rows = self._take_parked(sa.and_(p.c.kind == "status", self._parked_message_known()), limit)
        if rows:
            log.info("parked statuses of stored messages applied", extra={"context": {
                "wazzup_message_ids": sorted({r.wazzup_message_id for r in rows})[:50], "count": len(rows)}})
            self._replay(rows)

    def _parked_message_known(self):
        """A parked item's message is stored (a condition on ``wazzup_parked``)."""
        p, wm = self.t["parked"], self.t["messages"]
        return sa.exists().where(wm.c.wazzup_message_id == p.c.wazzup_message_id)

    def expire_parked(self, limit: int = 200) -> None:
        """Housekeeping: statuses parked over a day are dropped (logged); echoes are released once their
        chat has no send in flight (e.g. it failed) or after a day: a message is never dropped."""
        p = self.t["parked"]
        self.apply_parked_of_known(limit)
        cutoff = self.now - PARKED_TTL
        # A status whose message is known by now is applied (above, ``limit`` at a time), never expired.
        expired = self._take_parked(sa.and_(p.c.kind == "status", p.c.received_at < cutoff,
                                            ~self._parked_message_known()), limit)
        if expired:
            self.summary.expired.extend(r.wazzup_message_id for r in expired)
            log.warning("parked statuses expired: their message never became known", extra={"context": {
                "count": len(expired), "wazzup_message_ids": [r.wazzup_message_id for r in expired][:50]}})
        self.release_echoes(older_than=cutoff, limit=limit)


@dataclass(frozen=True)
class OneStatement:
    """What the usual delivery's one statement (``Writer.store_in_one_statement``) did.

    ``outcome``: ``"stored"``, the message is in; ``"stored_before"``, a copy was stored already and
    nothing was written; ``"general"``, nothing was written and the general path decides (a new
    chat, a contact's new name or avatar, the very first write, or a message another delivery
    stored while the statement waited for the counter). For ``"stored"``: ``current``, the
    statement's snapshot was as current as the counter it took (see ``Database.change_seq_cte``);
    ``parked``, it saw something parked under the message's Wazzup id."""

    outcome: str
    current: bool = True
    parked: bool = False


@dataclass
class Prefetched:
    """What a delivery's read-only lookups found before its writes: rows committed by then.

    Chats and stored messages are never deleted, so whatever was found still exists when the
    delivery writes; what was not found is decided under the write lock (insert-or-ignore under the
    unique constraints, as always). Taking these lookups out of the write lock shortens the time
    every other writer waits (SQLite: the whole write transaction; PostgreSQL: the change counter).
    """

    stored: dict[str, tuple]
    chats: dict[tuple, dict]

    def nothing_to_write(self, delivery) -> bool:
        """Plain copies of stored messages and nothing else: the delivery changes nothing."""
        return (not (delivery.statuses or delivery.channels or delivery.quarantined) and bool(delivery.messages)
                and all(m.message_id in self.stored and _changes_nothing_when_stored(m)
                        for m in delivery.messages))


class _LookupsOnly:
    """A transaction stand-in for lookups before the write: it has a connection and no counter."""

    def __init__(self, conn):
        self.conn = conn

    @property
    def change_seq(self):
        raise RuntimeError("lookups before the write take no change counter")


def prefetch(conn, state, delivery, now: datetime) -> Prefetched:
    """Look up the delivery's stored messages and chats, writing nothing and taking no lock."""
    reader = Writer(_LookupsOnly(conn), state, now)
    newest = newest_copies(delivery.messages)
    if len(newest) == 1:  # the usual delivery: both lookups at once (PostgreSQL: one statement)
        ((wid, msg),) = newest.items()
        return Prefetched(*reader.lookup_one(wid, msg.chat_key))
    stored = reader._stored_messages(newest) if newest else {}
    keys = sorted({m.chat_key for wid, m in newest.items() if wid not in stored})
    return Prefetched(stored=stored, chats=reader._find_chats(keys) if keys else {})


def write_delivery(db, state, delivery, now: datetime, housekeeping: bool = False) -> Summary:
    """Store one parsed delivery: its lookups first, then one write transaction (or none at all).

    SQLite's write transaction holds the database's single write lock from ``BEGIN IMMEDIATE``, so
    the lookups run in a read transaction before it. PostgreSQL's write lock is the change counter,
    taken at the first write, so the lookups run in the same transaction before it.
    A delivery of plain copies of stored messages writes nothing.
    """
    if delivery.empty and not housekeeping:
        return Summary()
    if db.dialect == "sqlite":
        if delivery.messages:  # statuses and channel reports have nothing to look up first
            with db.read() as conn:
                found = prefetch(conn, state, delivery, now)
        else:
            found = Prefetched(stored={}, chats={})
        if not housekeeping and found.nothing_to_write(delivery):
            return Summary(duplicates=sorted(newest_copies(delivery.messages)))
        with db.write() as tx:
            return store_delivery(tx, state, delivery, now, housekeeping, prefetched=found)
    if not housekeeping and _one_plain_message(delivery):
        summary = _write_in_one_statement(db, state, delivery, now)
        if summary is not None:
            return summary
    with db.write() as tx:
        found = prefetch(tx.conn, state, delivery, now)
        if not housekeeping and found.nothing_to_write(delivery):
            return Summary(duplicates=sorted(newest_copies(delivery.messages)))
        return store_delivery(tx, state, delivery, now, housekeeping, prefetched=found)


def _one_plain_message(delivery) -> bool:
    """One incoming message and nothing else: the usual delivery."""
    return (len(delivery.messages) == 1 and not delivery.messages[0].is_echo
            and not (delivery.statuses or delivery.channels or delivery.quarantined))


def _write_in_one_statement(db, state, delivery, now: datetime) -> Summary | None:
    """PostgreSQL: the usual delivery as one round trip, one statement in autocommit that looks up
    and writes (``Writer.store_in_one_statement``).

    In a transaction it took five (``BEGIN``, the lookup, the counter, the write, ``COMMIT``), and
    the counter's lock was held across three of them. A plain copy of a stored message writes
    nothing. Returns ``None`` when the statement left the delivery to the general path (it then
    wrote nothing): a new chat, a contact's new name or avatar, an edit or deletion of a stored
    message, a message another delivery stored meanwhile, or the very first write (no counter yet).
    Echoes parked in the chat are not looked at: an incoming message settles no send; they are
    released when the send settles, or by housekeeping.
    """
    (msg,) = delivery.messages
    with db.write_one_statement() as tx:
        writer = Writer(tx, state, now)
        done = writer.store_in_one_statement(msg)
        if done.outcome == "stored_before" and _changes_nothing_when_stored(msg):
            return Summary(duplicates=[msg.message_id])
        if done.outcome != "stored":
            return None
        summary = writer.summary
        # The statement's snapshot may predate a write that committed while it waited for the
        # counter, and that write may have parked a status of this very message: look again, now
        # that the message is committed (a delivery parking from now on finds the message instead).
        parked = done.parked or (not done.current and writer.parked_for(msg.message_id))
    if parked:
        # Applied under the counter, in a transaction of its own. Should the process stop right
        # here, housekeeping applies what is parked for a stored message (``apply_parked_of_known``).
        with db.write() as tx:
            writer = Writer(tx, state, now)
            writer.apply_parked([msg.message_id])
            summary.add(writer.finish())
    return summary


def store_delivery(tx, state, delivery, now: datetime, housekeeping: bool = False,
                   prefetched: Prefetched | None = None) -> Summary:
    """Write one parsed delivery in ``tx``; returns what happened (for the log and the answer).

    ``prefetched``: the delivery's lookups, made before ``tx`` began (SQLite) or in ``tx`` before
    any write (PostgreSQL); without it, everything is looked up under the change counter."""
    writer = Writer(tx, state, now)
    if delivery.empty and not housekeeping:
        return writer.summary
    writer.lock()
    writer.store_channels(delivery.channels)
    writer.store_quarantine(delivery.quarantined)
    writer.store_messages(delivery.messages, prefetched=prefetched)
    writer.apply_statuses(delivery.statuses)
    if housekeeping:
        writer.expire_parked()
    return writer.finish()
