"""Statuses and echoes that arrive before their message is known: parked, replayed once it is,
released (echoes) once no send is in flight in their chat, and expired by housekeeping.

``parked.py`` is the entry point the outbound flow calls; this is the ``Writer`` side of it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from wazzup_plugin.inbound.echoes import IN_FLIGHT
from wazzup_plugin.inbound.id_chunks import chunks
from wazzup_plugin.inbound.parse import parse_message, parse_status, raw_json
from wazzup_plugin.store_common import insert_ignore

# Logged under the name these writes always had (log filters and alerts match it), although
# the code now lives here.
log = logging.getLogger("wazzup_plugin.inbound.store")

PARKED_TTL = timedelta(days=1)


class EarlyArrivals:
    """``Writer``'s parking and replaying of statuses and echoes.

    Relies on these of ``Writer``: ``conn``, ``t``, ``messages``, ``now``, ``summary``, ``lock``,
    ``_driver_statement``, ``_nothing_parked`` (set and read here) and ``store_messages``; on
    ``apply_statuses`` (``StatusWrites``).
    """

    def parked_for(self, wazzup_message_id: str) -> bool:
        """Whether anything is parked under this Wazzup id (one indexed look)."""
        p = self.t["parked"]
        stmt = self._driver_statement("parked_for", lambda: sa.select(p.c.id).where(
            p.c.wazzup_message_id == sa.bindparam("b_wid", type_=p.c.wazzup_message_id.type)).limit(1))
        return bool(stmt.rows(self.conn, {"b_wid": wazzup_message_id}))

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
        for part in chunks([r.id for r in rows]):
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
        for part in chunks(ids):
            rows.extend(self._take_parked(p.c.wazzup_message_id.in_(part)))
        if rows:
            log.info("parked items applied", extra={"context": {
                "wazzup_message_ids": sorted({r.wazzup_message_id for r in rows})[:50], "count": len(rows)}})
            self._replay(rows)
        # Echoes parked in these chats that were not the send: once no send is in flight there,
        # they were typed on the phone, so they become outgoing messages.
        wm = self.t["messages"]
        chat_ids = set()
        for part in chunks(ids):
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
        # Echoes first: a status parked for an echo that was itself parked (a send stuck in flight
        # in its chat) waited for it as long, and applies as the echo is stored.
        self.release_echoes(older_than=cutoff, limit=limit)
        # A status whose message is known by now is applied (above, ``limit`` at a time), never expired.
        expired = self._take_parked(sa.and_(p.c.kind == "status", p.c.received_at < cutoff,
                                            ~self._parked_message_known()), limit)
        if expired:
            self.summary.expired.extend(r.wazzup_message_id for r in expired)
            log.warning("parked statuses expired: their message never became known", extra={"context": {
                "count": len(expired), "wazzup_message_ids": [r.wazzup_message_id for r in expired][:50]}})
