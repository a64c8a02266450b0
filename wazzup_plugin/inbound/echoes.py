"""Echoes of our own sends: an echo that is a send of ours settles it (its Wazzup id) instead of
becoming a second copy; one that may be a send still in flight is parked until that send's answer."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from wazzup_plugin.inbound.id_chunks import chunks
from wazzup_plugin.inbound.message_rows import content_name
from wazzup_plugin.inbound.parse import Message

# Logged under the name these writes always had (log filters and alerts match it), although
# the code now lives here.
log = logging.getLogger("wazzup_plugin.inbound.store")

# Sends whose Wazzup answer may still come: an echo in their chat is parked until it does.
IN_FLIGHT = ("queued",)
# Sends settled without a Wazzup id (REPEATED_CRM_MESSAGE_ID, or a fate unclear past the dedupe window):
# no answer will bring the id, so an echo with the same content is taken as that send.
SETTLED_WITHOUT_ID = ("accepted", "unknown")
# How far Wazzup's clock and ours may disagree when an echo's time is compared with our attempts.
ECHO_CLOCK_SKEW = timedelta(minutes=2)


def _could_be_its_echo(send, echo: Message) -> bool:
    """Whether Wazzup's time for ``echo`` lies within the attempts of ``send`` (a row with
    ``first_attempt_at`` and ``updated_at``, when it settled), give or take the clocks' skew."""
    if echo.at is None or send.first_attempt_at is None:
        return True  # nothing to compare: content decides, as before
    return send.first_attempt_at - ECHO_CLOCK_SKEW <= echo.at <= send.updated_at + ECHO_CLOCK_SKEW


def _same_content(send, echo: Message) -> bool:
    """Whether ``echo`` carries what ``send`` (a row with ``text``, ``content_uri`` and ``content_name``) sent.

    A file is the same by its link, or by its name: Wazzup downloads a file from our link at once
    and may echo it from its own store, another link that keeps the name (``?filename=``, as its
    store's links carry it). The name of a long one is the shortened name our link carried."""
    if echo.text is not None and send.text == echo.text:
        return True
    if echo.content_uri is None or send.content_uri is None:
        return False
    if send.content_uri == echo.content_uri:
        return True
    name = content_name(echo.content_uri)
    return name is not None and name in (send.content_name, content_name(send.content_uri))


class Echoes:
    """``Writer``'s matching, adopting and parking of echoes of our own sends.

    Relies on these of ``Writer``: ``conn``, ``t`` and ``messages``; on ``_stored_messages``
    (``StoredLookups``) and ``_park`` (``EarlyArrivals``).
    """

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
        for part in chunks(keys):
            rows = self.conn.execute(
                sa.select(wm.c.message_id, m.c.status, m.c.text, m.c.content_uri, m.c.content_name,
                          wc.c.channel_id, wc.c.chat_type,
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
            match = next((r for r in sends if _same_content(r, echo) and _could_be_its_echo(r, echo)), None)
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
        for part in chunks(sorted(chat_ids)):
            busy.update(self.conn.execute(
                sa.select(wm.c.chat_id).distinct().join(m, m.c.id == wm.c.message_id)
                .where(wm.c.chat_id.in_(part), wm.c.wazzup_message_id.is_(None), m.c.status.in_(IN_FLIGHT))
            ).scalars())
        return busy
