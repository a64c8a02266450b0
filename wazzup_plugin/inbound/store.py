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

The writes are ``Writer``'s, one concern a module, gathered here as mixins: ``stored_lookups``
(stored messages and chats), ``chat_writes``, ``echoes`` (of our own sends), ``new_messages``,
``message_edits``, ``status_writes`` and ``early_arrivals`` (parked statuses and echoes);
``message_rows`` holds what a message shows and stores, without the database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from datetime import datetime

import sqlalchemy as sa

from wazzup_plugin.driver_sql import DriverStatement
from wazzup_plugin.inbound.chat_writes import ChatWrites
from wazzup_plugin.inbound.early_arrivals import EarlyArrivals
from wazzup_plugin.inbound.echoes import Echoes
from wazzup_plugin.inbound.message_edits import MessageEdits
from wazzup_plugin.inbound.message_rows import contact_update, newest_copies
from wazzup_plugin.inbound.new_messages import WAZZUP_COLUMNS, NewMessages, selected_parameters
from wazzup_plugin.inbound.parse import ChannelUpdate, Message, Quarantined, quarantine_digest, raw_json
from wazzup_plugin.inbound.status_writes import StatusWrites
from wazzup_plugin.inbound.stored_lookups import StoredLookups
from wazzup_plugin.media.enqueue import QUEUED_COLUMNS, pending_row
from wazzup_plugin.store_common import built, dialect_insert, host_tables, insert_ignore, upsert

log = logging.getLogger(__name__)


def _changes_nothing_when_stored(msg: Message) -> bool:
    """A copy of a stored message that brings nothing new: no echo (statuses), no edit, no deletion."""
    return not (msg.is_echo or msg.is_edited or msg.is_deleted)


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
    # (message id, Wazzup id, error code) of each message a status report turned failed: each is logged
    failed: list[tuple] = field(default_factory=list)

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
            "message_ids": sorted(self.message_ids)[:limit],
        }


class Writer(StoredLookups, ChatWrites, Echoes, NewMessages, MessageEdits, StatusWrites, EarlyArrivals):
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

    def _driver_statement(self, name: str, build, column_keys: tuple = ()) -> DriverStatement:
        """A hot statement inside the write lock, compiled once and run on the driver (``driver_sql``)."""
        dialect = self.conn.dialect
        return built(self.t["messages"], ("inbound-driver", name, dialect.name, column_keys),
                     lambda: DriverStatement(build(), dialect, column_keys))

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
        rows = []
        for q in items:
            item = raw_json(q.raw)
            rows.append({"section": q.section, "wazzup_message_id": q.message_id, "reason": q.reason,
                         "item": item, "item_digest": quarantine_digest(q.section, item), "received_at": self.now})
        # Wazzup delivers at least once: an odd item it sends again is the row already kept, not a
        # second one (an operator would replay both, and the status check would count both).
        insert_ignore(self.conn, self.t["quarantine"], sorted(rows, key=lambda r: r["item_digest"]))
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

    # ------------------------------------------------------------------ the usual delivery in one statement (PostgreSQL)

    def store_in_one_statement(self, msg: Message) -> "OneStatement":
        """PostgreSQL, in ``db.write_one_statement()``: the usual delivery (one new incoming message)
        in one statement, its lookups included: one round trip. The statement finds the chat and
        whether the message is stored; only for a new message in a known chat whose contact is
        unchanged does it take the counter (see ``_in_one_statement``) and write. Anything else it
        leaves to the general path, having written nothing and locked nothing."""
        row, values = self._one_message_values(msg, None, stamped=False)
        name, avatar = contact_update(msg)  # as the general path's ``_contact_changes``: None for a group
        values.update(b_channel=msg.chat_key[0], b_type=msg.chat_key[1], b_chat=msg.chat_key[2],
                      b_name=name, b_avatar=avatar)
        media = bool(msg.content_uri)  # its download is queued in the same statement (wazzup_plugin/media)
        if media:
            values.update({f"q_{k}": v for k, v in pending_row(None, None, msg.content_uri, self.now).items()
                           if k in QUEUED_COLUMNS})
        stmt = self._driver_statement(("in_one_statement", tuple(row), media),
                                      lambda: self._in_one_statement(tuple(row), media))
        ((stored_id, chat_id, seq, seen, host_id, _followed, parked, *_queued),) = stmt.rows(self.conn, values)
        if stored_id is not None:
            return OneStatement("stored_before")
        if host_id is None:  # no such chat, a new contact name or avatar, no counter yet, or a race lost
            return OneStatement("general")
        self.summary.new.append(msg.message_id)
        self.summary.message_ids.add(host_id)
        self.summary.chat_ids.add(chat_id)
        self.finish()
        return OneStatement("stored", current=seq == seen + 1, parked=bool(parked))

    def _in_one_statement(self, message_columns: tuple[str, ...], media: bool = False) -> sa.Select:
        """``WITH chat AS (the chat of the key, if its contact is unchanged), stored AS (the message's
        Wazzup row), change_seq AS (UPDATE counter … only if a chat and no stored row), won AS
        (INSERT INTO wazzup_messages … SELECT nextval(…) FROM change_seq, chat ON CONFLICT DO NOTHING),
        new_message AS (INSERT INTO messages … SELECT … FROM won, change_seq, chat), followed AS
        (UPDATE chats … WHERE EXISTS (new_message))``; with ``media``, also ``queued AS (INSERT INTO
        wazzup_media … SELECT … FROM won)``: the download of the message's media, queued with it.

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
            # A contact's new name or avatar renames the chat: the general path's work (never a
            # group's: its ``b_name`` and ``b_avatar`` are None, see ``contact_update``).
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
            sa.select(next_id, chat.c.chat_id, *selected_parameters(wm, "w_", wazzup_columns))
            .select_from(seq.join(chat, sa.true())))
            .on_conflict_do_nothing().returning(wm.c.message_id, wm.c.chat_id).cte("won"))
        host_columns = [k for k in message_columns if k != "chat_id"]
        new = (sa.insert(m).from_select(
            [pk.name, "chat_id", *host_columns, "change_seq"],
            sa.select(won.c.message_id, won.c.chat_id, *selected_parameters(m, "m_", host_columns), seq.c.value)
            .select_from(won.join(seq, sa.true())))
            .returning(m.c.id).cte("new_message"))
        followed = (self._chat_follow_update(seq=sa.select(seq.c.value).scalar_subquery(),
                                             chat_id=sa.select(chat.c.chat_id).scalar_subquery())
                    .where(sa.exists(sa.select(new.c.id))).returning(c.c.id).cte("followed"))
        p = self.t["parked"]
        parked = sa.exists().where(p.c.wazzup_message_id == sa.bindparam("w_wazzup_message_id"))
        queued = []
        if media:  # selected, as ``followed`` is, so that SQLAlchemy keeps the CTE
            mt = self.t["media"]
            q = (dialect_insert(self.conn, mt).from_select(
                ["message_id", "chat_id", *QUEUED_COLUMNS],
                sa.select(won.c.message_id, won.c.chat_id, *selected_parameters(mt, "q_", QUEUED_COLUMNS)))
                .on_conflict_do_nothing().returning(mt.c.message_id).cte("queued"))
            queued = [sa.select(q.c.message_id).scalar_subquery().label("queued")]
        # One row whatever happened: the lookups' findings, and what was written (NULLs when nothing).
        one = sa.select(sa.literal_column("1").label("one")).subquery("one")
        return (sa.select(sa.select(stored.c.message_id).scalar_subquery().label("stored_id"),
                          sa.select(chat.c.chat_id).scalar_subquery().label("chat_id"),
                          seq.c.value.label("seq"), seq.c.seen,
                          sa.select(new.c.id).scalar_subquery().label("host_id"),
                          sa.select(followed.c.id).scalar_subquery().label("followed"), parked.label("parked"),
                          *queued)
                .select_from(one.outerjoin(seq, sa.true())))


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
