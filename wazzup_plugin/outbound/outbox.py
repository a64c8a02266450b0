"""The durable outbox: store first, then send; retry without ever sending twice.

A message is written (host ``messages`` row ``queued``, ``wazzup_messages`` with our
``crmMessageId``, an outbox row) and committed before Wazzup is called. Whoever calls Wazzup for a
row holds its lease (the web request for the first attempt, a worker for retries), and records the
attempt *before* the call, so a process killed mid-call leaves a row that the next holder treats as
"may have been sent".

Retry rules (DESIGN.md §4):
- surely not sent (connection refused, connect timeout, 429): retry any time, with backoff, for up
  to :data:`MAX_QUEUE_AGE`; then ``failed`` (``NOT_SENT``), visible to the agent, who may resend.
- ``MESSAGE_CHANNEL_UNAVAILABLE`` (Wazzup: "Wait a minute", the channel's phone is starting up or
  offline): a refusal, so surely not sent; retried every minute or so (:data:`CHANNEL_UNAVAILABLE_RETRY`)
  until :data:`MAX_QUEUE_AGE`, then ``failed`` with that code.
- maybe sent (read timeout, dropped connection, 5xx): retry with the same ``crmMessageId`` only while
  Wazzup's 60-second dedupe window since the first attempt is surely still open; past it,
  ``unknown`` unless an echo or a status already moved the message on.
- ``REPEATED_CRM_MESSAGE_ID``: an earlier attempt went out: ``accepted`` (the id comes with the echo).
- any other Wazzup error, or Wazzup refusing our key: ``failed`` with the code and a human text.

Lanes (:data:`LANE_MAYBE_SENT` …): the worker takes a chat whose first message may have reached
Wazzup before any other (its retry must reach Wazzup inside the dedupe window, or it ends
``unknown``), then chats with what agents sent (a file, a message queued behind a retry), then
integrators' ``Prefer: respond-async`` sends: a bulk send of hundreds never holds back an agent's
file or a retry's deadline. A message an agent queues behind a chat's bulk ones brings them into the
agents' lane (they must go first, and the agent is waiting for them).

Order (:func:`claim_due_rows`): a worker never sends a chat's message while an earlier one of that
chat (lower message id) is still pending — queued, leased, or waiting for its retry. Once the
earlier one ends (accepted, failed, unknown, or settled by a webhook) the later ones go at once.
The wait is bounded by the rules above (an hour at most, a minute once maybe sent), so no extra
escape is needed: a message no retry can help (a channel only a person can fix, a refusal) fails
at once, and parked webhook items never hold a send back.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import NamedTuple

import sqlalchemy as sa

from wazzup_plugin.client import (WazzupApiError, WazzupAuthError, WazzupError, WazzupInvalidData,
                                  WazzupRateLimited, WazzupUnavailable, normalize_code)
from wazzup_plugin.outbound.addresses import address_of, learn_chat_id, recipient_fields
from wazzup_plugin.outbound.channels import (ChannelNeedsAPerson, ChannelSelectionError, needs_a_person,
                                              select_channel, what_to_do)
from wazzup_plugin.inbound.message_rows import preview as chat_preview
from wazzup_plugin.inbound.parked import apply_parked, send_settled
from wazzup_plugin.statuses import TIMESTAMP_COLUMN, TRANSITIONS, can_move
from wazzup_plugin.store_common import built, in_batches
from wazzup_plugin.error_texts import human_text

log = logging.getLogger(__name__)

DEDUPE_WINDOW = timedelta(seconds=60)
MAX_QUEUE_AGE = timedelta(hours=1)
SURE_BACKOFF = (2, 5, 15, 30, 60, 120, 300)
MAYBE_BACKOFF = (2, 4, 8, 16)
IDEMPOTENCY_TTL = timedelta(hours=24)
# Claiming order before the due time (wazzup_outbox.lane): a retry that may have reached Wazzup first,
# then agents' sends, then integrators' respond-async sends.
LANE_MAYBE_SENT, LANE_AGENTS, LANE_BULK = 0, 1, 2
LANES = (LANE_MAYBE_SENT, LANE_AGENTS, LANE_BULK)
# Wazzup answers MESSAGE_CHANNEL_UNAVAILABLE with "Wait a minute" (reference §3.5): retry after that.
CHANNEL_UNAVAILABLE_RETRY = 60.0

CHANNEL_CODES = {normalize_code(c) for c in (
    "CHANNEL_NOT_FOUND", "CHANNEL_BLOCKED", "CHANNEL_WAPI_REJECTED", "CHANNEL_NO_MONEY", "MESSAGE_CHANNEL_UNAVAILABLE",
    "CHANNEL_LIMIT_EXCEEDED", "BALANCE_IS_EMPTY", "WRONG_TRANSPORT", "CHANNEL_NOT_SELECTED")}


@dataclass(frozen=True)
class Outcome:
    """What one attempt led to. ``kind``: accepted, failed, retry, unknown, busy (not ours to try)."""

    kind: str
    message_id: int
    wazzup_message_id: str | None = None
    wazzup_chat_id: str | None = None  # accepted: the chat Wazzup says it went to (addresses.py)
    error_code: str | None = None
    error_text: str | None = None
    retry_at: datetime | None = None
    auth_failure: bool = False
    channel_problem: bool = False

    def __post_init__(self):
        # Cut once to the columns they are written to (messages.error_code/error_text): a reason
        # built from Wazzup's answer or from its channel list has no length of its own, and a value
        # past a column would fail the transaction that records the outcome.
        if self.error_code is not None and len(self.error_code) > ERROR_CODE_LENGTH:
            object.__setattr__(self, "error_code", self.error_code[:ERROR_CODE_LENGTH])
        if self.error_text is not None and len(self.error_text) > ERROR_TEXT_LENGTH:
            object.__setattr__(self, "error_text", self.error_text[:ERROR_TEXT_LENGTH])


# Outcomes after which the row is still pending (retried later, or someone else holds it): the
# chat's later messages wait for it. Every other outcome settled the message.
STILL_PENDING = frozenset({"retry", "busy"})

ERROR_CODE_LENGTH, ERROR_TEXT_LENGTH = 100, 1000  # messages.error_code, messages.error_text
LAST_ERROR_LENGTH = 500                           # wazzup_outbox.last_error


@dataclass(frozen=True)
class _Message:
    """What an attempt needs of the host's message row."""

    status: str
    text: str | None
    content_uri: str | None
    author_agent_id: int | None


def new_crm_message_id() -> str:
    return str(uuid.uuid4())


def lease_seconds(ctx) -> float:
    return ctx.settings.connect_timeout + ctx.settings.read_timeout + ctx.limiter.max_wait + 30


def enqueue(tx, ctx, *, chat_id: int, now: datetime, lease_owner: str | None, text=None, content_uri=None,
            content_name=None, content_type=None, message_type="text", ref_message_id=None, author_agent_id=None,
            author_name=None, written: dict | None = None, template: tuple[str, list[str]] | None = None,
            lane: int = LANE_AGENTS) -> int:
    """Store an outgoing message and its outbox row (in the caller's transaction); returns its id.

    With a ``lease_owner`` (the caller attempts the message as soon as this commits) the first
    attempt is recorded here too whenever that needs no call to Wazzup and the rate limiter grants
    a call right now: the stored message, the attempt marker and the call's budget then share one
    commit (one fsync) before Wazzup is called, and :func:`attempt` goes straight to the call.
    Otherwise :func:`attempt` records the attempt itself, as for a retry.

    ``written``: a dict that receives ``"row"``, the outbox row and message as :func:`attempt` reads
    them, as this transaction writes them (valid once it commits: see ``attempt``'s ``as_written``).

    ``template``: (Wazzup's templateId, templateValues) of a WhatsApp Business template send; ``text``
    is then the template filled in, as the agent sees it, and the template is what goes out.

    ``lane``: :data:`LANE_AGENTS`, or :data:`LANE_BULK` for an integrator's respond-async send.
    """
    helpdesk, tables = ctx.helpdesk, ctx.state.tables
    # Statements built once (their values are parameters): building them cost as much as running them.
    m, w, o, chats = helpdesk.tables.messages, tables["messages"], tables["outbox"], helpdesk.tables.chats
    # messenger_at: the time the chat's last_message_at gets below (the same value), so that an edit
    # or deletion of this message from the phone finds it is the chat's last and follows its preview.
    message_id = tx.conn.execute(built(m, "enqueue", lambda: sa.insert(m)), dict(
        chat_id=chat_id, direction="out", status="queued", type=message_type, text=text, content_uri=content_uri,
        content_name=content_name, content_type=content_type, author_agent_id=author_agent_id,
        author_name=author_name, messenger_at=now,
        created_at=now, queued_at=now, change_seq=tx.change_seq,
    )).inserted_primary_key[0]
    crm_id = new_crm_message_id()
    tx.conn.execute(built(w, "enqueue", lambda: sa.insert(w)), dict(
        message_id=message_id, chat_id=chat_id, crm_message_id=crm_id, is_echo=False, sent_from_app=False,
        ref_message_id=ref_message_id))
    outbox_row = dict(
        message_id=message_id, chat_id=chat_id, state="pending", crm_message_id=crm_id, ref_message_id=ref_message_id,
        attempts=0, maybe_sent=False, next_attempt_at=now, created_at=now, updated_at=now, lane=lane,
        template_id=template[0] if template else None,
        template_values=json.dumps(template[1], ensure_ascii=False) if template else None,
        lease_owner=lease_owner, lease_until=(now + timedelta(seconds=lease_seconds(ctx))) if lease_owner else None)
    if lease_owner:
        target = _first_attempt_now(tx.conn, ctx, chat_id)
        if target is not None:
            channel_id, chat_type, wazzup_chat_id = target
            outbox_row.update(attempts=1, attempt_started_at=now, first_attempt_at=now, channel_id=channel_id,
                              chat_type=chat_type, wazzup_chat_id=wazzup_chat_id)
    tx.conn.execute(built(o, "enqueue", lambda: sa.insert(o)), outbox_row)
    if lane == LANE_AGENTS and lease_owner is None:
        # Queued for the worker (a file, or behind a message of the chat still pending): the chat's
        # bulk messages before it go in the agents' lane from now on, else it would wait behind
        # every integrator's message queued elsewhere. (Sent at once, a chat has none pending.)
        tx.conn.execute(built(o, "agents_lane", lambda: sa.update(o).where(
            o.c.chat_id == sa.bindparam("b_chat_id", type_=o.c.chat_id.type), o.c.state == _PENDING,
            o.c.lane == LANE_BULK).values(lane=LANE_AGENTS)), {"b_chat_id": chat_id})
    if written is not None:
        written["row"] = _AttemptRow(**{
            **{c.name: None for c in o.c}, **outbox_row, "m_status": "queued", "m_text": text,
            "m_content_uri": content_uri, "m_author_agent_id": author_agent_id})
    # The chat list reads a sent file as it reads a received one ("[Document] invoice.pdf").
    preview = chat_preview(text, message_type, content_name) if text or content_name else (content_uri or "")[:200]
    tx.conn.execute(built(chats, "enqueue", lambda: sa.update(chats).where(chats.c.id == sa.bindparam("b_id")).values(
        last_message_at=sa.bindparam("b_at", type_=chats.c.last_message_at.type),
        last_activity_at=sa.bindparam("b_at", type_=chats.c.last_activity_at.type),
        last_message_preview=sa.bindparam("b_preview", type_=chats.c.last_message_preview.type),
        change_seq=sa.bindparam("b_seq", type_=chats.c.change_seq.type))),
        {"b_id": chat_id, "b_at": now, "b_preview": preview, "b_seq": tx.change_seq})
    tx.touched(chat_ids=[chat_id], message_ids=[message_id])
    return message_id


class _AttemptRow(SimpleNamespace):
    """An outbox row with its message's ``m_*`` fields, as :func:`attempt` reads it (attribute access)."""


class _NotCached(Exception):
    """Choosing the channel would need Wazzup's channel list, and it is not cached."""


def _not_cached():
    raise _NotCached


def _first_attempt_now(conn, ctx, chat_id: int) -> tuple[str, str, str] | None:
    """The first attempt's target when it can be recorded in the storing transaction, having taken
    the call from the rate limiter there; None when :func:`attempt` must do it (Wazzup's channel
    list is needed and not cached, the chat has no recipient, or no budget is free right now: a
    wait never happens inside a write transaction)."""
    if not _budget_ours(ctx):
        return None
    try:
        target = _target(conn, ctx, chat_id, lambda: ctx.cached("channels", _not_cached))
    except (_NotCached, ChannelSelectionError, WazzupError):
        return None
    if target is None or ctx.limiter.take(conn) > 0:
        return None
    return target


def _budget_ours(ctx) -> bool:
    """Whether the client counts its calls on ``ctx.limiter`` (so a call taken there is the client's)."""
    return ctx.client is not None and getattr(ctx.client, "rate_limiter", None) is ctx.limiter


def _target(conn, ctx, chat_id: int, list_channels) -> tuple[str, str, str] | None:
    """(channel id, chat type, Wazzup chat id) of a chat's next send; None when it has no recipient.

    Raises ChannelSelectionError, or a WazzupError from ``list_channels`` (called only when
    neither the chat nor the settings name a channel)."""
    return _choose_channel(ctx, _recipient(conn, ctx, chat_id), list_channels)


def _recipient(conn, ctx, chat_id: int) -> tuple:
    """What the database says of a chat's recipient: (its channel id or None, chat type, Wazzup chat id,
    and of that channel as far as known: state, transport, plain id)."""
    wc, ch = ctx.state.tables["chats"], ctx.state.tables["channels"]
    chat = conn.execute(built(wc, "send_target_channel", lambda: sa.select(
        wc.c.channel_id, wc.c.chat_type, wc.c.wazzup_chat_id, ch.c.state, ch.c.transport, ch.c.plain_id)
        .select_from(wc.outerjoin(ch, ch.c.channel_id == wc.c.channel_id))
        .where(wc.c.chat_id == sa.bindparam("b_chat_id", type_=wc.c.chat_id.type))),
        {"b_chat_id": chat_id}).first()
    if chat is not None:
        return (chat.channel_id, chat.chat_type or "whatsapp", chat.wazzup_chat_id, chat.state, chat.transport,
                chat.plain_id)
    chats = ctx.helpdesk.tables.chats
    phone = conn.execute(sa.select(chats.c.phone).where(chats.c.id == chat_id)).scalar()
    return None, "whatsapp", "".join(ch for ch in (phone or "") if ch.isdigit()), None, None, None


def _choose_channel(ctx, recipient: tuple, list_channels) -> tuple[str, str, str] | None:
    """:func:`_target` once the chat is read; ``list_channels`` may call Wazzup, so the caller holds
    no database transaction around this (a read kept open over a network call pins a connection).

    Raises ChannelNeedsAPerson when the chat's own channel is known to be in a state only a person
    can fix (unauthorized, disabled, unpaid...): the message fails at once, saying what to do,
    instead of being retried for an hour."""
    stored_channel_id, chat_type, wazzup_chat_id, state, transport, plain_id = recipient
    if stored_channel_id and needs_a_person(state):
        raise ChannelNeedsAPerson(what_to_do(stored_channel_id, transport, plain_id, state))
    selected = select_channel(stored_channel_id, ctx.settings.channel_id, list_channels)
    if not wazzup_chat_id:
        return None
    return selected.channel_id, chat_type, wazzup_chat_id


# Idempotency-Keys forgotten per housekeeping run (every 5 minutes), in batches of one statement
# each: up to 20,000 per run keeps up with an integrator sending 60 keyed requests a second all day.
IDEMPOTENCY_BATCH = 500
IDEMPOTENCY_BATCHES = 40


def purge_idempotency_keys(ctx, batch: int = IDEMPOTENCY_BATCH, max_batches: int = IDEMPOTENCY_BATCHES) -> int:
    """Forget Idempotency-Keys older than a day (a client repeats a request within minutes), oldest first."""
    t = ctx.state.tables["idempotency"]
    old = t.c.created_at < ctx.clock() - IDEMPOTENCY_TTL
    return in_batches(ctx, (t.c.agent_id, t.c.key), t.c.created_at, old,
                      lambda keys: sa.delete(t).where(sa.tuple_(t.c.agent_id, t.c.key).in_(keys), old),
                      batch, max_batches)


# ---------------------------------------------------------------- claiming


class Claimed(NamedTuple):
    """A row :func:`claim_due_rows` leased: the worker stops a chat's run at its first unsettled message."""

    message_id: int
    chat_id: int


def claim_due(ctx, owner: str, limit: int = 10) -> list[int]:
    """:func:`claim_due_rows`, as message ids."""
    return [row.message_id for row in claim_due_rows(ctx, owner, limit)]


def claim_due_rows(ctx, owner: str, limit: int = 10) -> list[Claimed]:
    """Lease up to ``limit`` due rows to ``owner``; rows leased by others are skipped, never shared.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets workers claim side by side; on SQLite the write
    transaction (``BEGIN IMMEDIATE``) serialises claimers. A row whose lease expired with an attempt
    still marked in flight belonged to a holder that died mid-call: it is flagged ``maybe_sent``.

    The chats come in the order of their first pending row's lane, due time and id (:func:`_ready_chats`),
    and the rows in :func:`_claiming_order`, as returned: the worker attempts them in that order.

    A chat's messages reach the customer in the order agents wrote them (message ids): a row is
    claimed only together with every pending row of its chat before it, so whoever holds a chat's
    later message holds all its earlier ones too, and attempts them first (a chat's rows are returned
    in id order).
    One waiting in its backoff, or leased by another (a worker, a send request's first attempt),
    holds the rest of its chat back; other chats go on. Two conditions, from the pending rows only
    (:func:`_earlier_in_chat`):

    - no earlier pending row of the chat is leased or not due yet: rows held back never fill the
      batch, so one waiting chat cannot starve the others (the ``LIMIT`` cuts the rows chat by chat
      and in id order, so each row's earlier ones come before it);
    - the number of the chat's earlier pending rows, checked against the rows claimed here:
      ``SKIP LOCKED`` passes over a row another worker is claiming this very moment (still
      pending in our snapshot, so counted: a later row is then dropped, never sent beside it).
      A pending row only ever becomes done, so the count, taken in the claiming statement's
      snapshot, errs only towards waiting one more round. The chat's first pending row is
      always claimable when due and free, so every chat moves on.

    No message waits forever: every pending row settles within :data:`MAX_QUEUE_AGE` (``failed``,
    ``NOT_SENT``), or once Wazzup's dedupe window is over if it may have been sent (``unknown``);
    a channel only a person can fix fails each message at once (``ChannelNeedsAPerson``), and
    parked webhook items wait on sends, never the other way round. A settled message, whatever
    its end (accepted, failed, unknown, or settled by a webhook), lets the next one go at once.
    """
    o = ctx.state.tables["outbox"]
    now = ctx.clock()
    params = {"b_now": now, "b_limit": limit}
    room = min(limit, MAX_CLAIM_CHATS)
    with ctx.helpdesk.db.write() as tx:
        # Statements built once (per number of chats), their values bound: building costs as much as running.
        chats = []
        for lane in LANES:  # a range read of the due index per lane, the earlier lanes first
            params.update(b_lane=lane, b_chats=room - len(chats))
            chats += tx.conn.execute(built(o, "claim_ready_chats", lambda: _ready_chats(o)), params).scalars().all()
            if len(chats) == room:
                break
        if not chats:
            return []
        params.update((f"b_chat_{n}", chat) for n, chat in enumerate(chats))
        rows = tx.conn.execute(built(o, ("claim_rows", len(chats)), lambda: _claimable_rows(o, len(chats))),
                               params).all()
        rows = _with_all_before(rows)
        if rows:  # one statement for the batch's leases, one more only for interrupted attempts
            tx.conn.execute(sa.update(o).where(o.c.message_id.in_([row.message_id for row in rows])).values(
                lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds(ctx)), updated_at=now))
        interrupted = [row.message_id for row in rows if row.attempt_started_at is not None]
        if interrupted:
            tx.conn.execute(sa.update(o).where(o.c.message_id.in_(interrupted))
                            .values(maybe_sent=True, attempt_started_at=None, lane=LANE_MAYBE_SENT))
            for message_id in interrupted:
                log.warning("Wazzup24 send interrupted mid-call by a stopped process; treating it as maybe sent",
                            extra={"context": {"message_id": message_id}})
    return [Claimed(row.message_id, row.chat_id) for row in sorted(rows, key=_claiming_order)]


# 'pending' as a literal: only then can the planner prove the partial indexes' condition (a bound
# value would do for one plan, but not for a prepared statement's generic plan).
_PENDING = sa.literal_column("'pending'")
# Chats one claim reads at most: the claim reads them in one statement of a part per chat, and SQLite
# takes at most 500 parts; a worker claims 10 rows, `worker --once` 100.
MAX_CLAIM_CHATS = 100


def _now(o):
    return sa.bindparam("b_now", type_=o.c.next_attempt_at.type)


def _limit():
    return sa.bindparam("b_limit", type_=sa.Integer)


def _ready_chats(o):
    """The chats whose first pending row is in lane ``b_lane``, due and free, in claiming order (that
    row's due time, id: a range of ``ix_wazzup_outbox_due``, which leads with the lane, so that a
    lane with nothing due costs one index probe), ``b_chats`` at most: only
    these can give rows (a chat's later rows wait for its first), and each row the claim takes comes
    after its chat's first in the claiming order (each row's earlier ones come before it). So the
    claim reads their first pending rows only, whatever the backlog: an integrator's broadcast to
    30,000 chats queued behind the rate limit costs each claim a few index reads, not a sort of
    30,000 rows while SQLite's write lock keeps every webhook waiting (bench/claim.py). A chat's
    first pending row is told through ``ix_wazzup_outbox_chat_pending``. On PostgreSQL those rows are
    locked here (``SKIP LOCKED``): a worker claiming beside another takes the next chats, not the same."""
    return (_first_rows_due(o, sa.bindparam("b_lane", type_=o.c.lane.type))
            .order_by(o.c.next_attempt_at, o.c.message_id).limit(sa.bindparam("b_chats", type_=sa.Integer))
            .with_for_update(skip_locked=True, of=o))


def _first_rows_due(o, lane) -> sa.Select:
    """The chats of lane ``lane`` whose first pending row is due and free (:func:`_ready_chats`)."""
    earlier = o.alias("earlier")
    return (sa.select(o.c.chat_id)
            .where(o.c.state == _PENDING, o.c.lane == lane, o.c.next_attempt_at <= _now(o),
                   sa.or_(o.c.lease_until.is_(None), o.c.lease_until <= _now(o)),
                   ~sa.exists().where(earlier.c.chat_id == o.c.chat_id, earlier.c.message_id < o.c.message_id,
                                      earlier.c.state == _PENDING)))


def anything_to_claim(ctx) -> bool:
    """Whether a claim now would take a row: some chat's first pending row is due and free.

    A read, taking no lock (on SQLite, no turn at the write lock): an idle worker asks it between
    polls (``wakeup``) and claims only when it is true. Each lane is a range of the due index, as in
    the claim. A row held back behind its chat's earlier one does not count: the claim could not take it."""
    o = ctx.state.tables["outbox"]
    with ctx.helpdesk.db.read() as conn:
        return bool(conn.execute(built(o, "anything_to_claim", lambda: _anything_to_claim(o)),
                                 {"b_now": ctx.clock()}).scalar())


def _anything_to_claim(o) -> sa.Select:
    # Lanes as literals: each EXISTS is then its own range of the lane-led due index.
    return sa.select(sa.or_(*[sa.exists(_first_rows_due(o, sa.literal_column(str(int(lane)))))
                              for lane in LANES]))


def _claimable_rows(o, chats: int):
    """The rows a claim may take from chats ``b_chat_0`` … (``chats`` of them, in claiming order),
    ``b_limit`` at most, each with how many pending rows of its chat come before it, in
    :func:`_claiming_order`: by the highest lane among the row and its chat's earlier rows, then by
    chat, then by id. A chat's rows keep their id order in it (that lane only grows along a chat), so
    each row's earlier ones come before it in the order the ``LIMIT`` cuts; and the bulk rows queued
    behind an agent's row come after other chats' agents' rows, not with their chat's first."""
    before = _earlier_in_chat(o, chats)
    now = _now(o)
    return (sa.select(o.c.message_id, o.c.chat_id, o.c.attempt_started_at, before.c.pending_before,
                      before.c.lane_so_far, before.c.chat_rank)
            .join(before, before.c.message_id == o.c.message_id)
            .where(o.c.state == _PENDING, o.c.next_attempt_at <= now,
                   sa.or_(o.c.lease_until.is_(None), o.c.lease_until <= now),
                   # Held back by an earlier row that is leased or not due yet.
                   sa.or_(before.c.due_at.is_(None), before.c.due_at <= now),
                   sa.or_(before.c.leased_until.is_(None), before.c.leased_until <= now))
            .order_by(before.c.lane_so_far, before.c.chat_rank, o.c.message_id).limit(_limit())
            .with_for_update(skip_locked=True, of=o))


def _earlier_in_chat(o, chats: int):
    """Each of the first ``b_limit`` pending rows of each chat ``b_chat_0`` … (``chat_rank``: that n)
    with what its chat's earlier pending rows add up to: how many there are, the latest time one is
    due, the latest lease one holds, and the highest lane among them and the row (``lane_so_far``). A claim of ``b_limit`` rows takes none past a chat's ``b_limit``-th, and a row's
    earlier ones are all among its chat's first rows, so window functions over those rows only (read
    through ``ix_wazzup_outbox_chat_pending``, a chat at a time) give each of them what a window over
    the whole backlog would: a chat with thousands of messages queued costs a claim no more than one
    with ten. (Rows past a chat's ``b_limit``-th, which the claim could never take, no longer compete
    for the batch's places either: a claim may take more rows than a window over everything did.)"""
    firsts = sa.union_all(*(
        sa.select(sa.select(o.c.message_id, o.c.chat_id, o.c.next_attempt_at, o.c.lease_until, o.c.lane,
                            sa.literal_column(str(n), sa.Integer).label("chat_rank"))
                  .where(o.c.state == _PENDING, o.c.chat_id == sa.bindparam(f"b_chat_{n}", type_=o.c.chat_id.type))
                  .order_by(o.c.message_id).limit(_limit()).subquery())
        for n in range(chats))).subquery("firsts")
    chat_order = {"partition_by": firsts.c.chat_id, "order_by": firsts.c.message_id}
    earlier = {**chat_order, "rows": (None, -1)}  # ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    return (sa.select(firsts.c.message_id, firsts.c.chat_rank,
                      (sa.func.row_number().over(**chat_order) - 1).label("pending_before"),
                      sa.func.max(firsts.c.lane).over(**chat_order, rows=(None, 0)).label("lane_so_far"),
                      sa.func.max(firsts.c.next_attempt_at).over(**earlier).label("due_at"),
                      sa.func.max(firsts.c.lease_until).over(**earlier).label("leased_until"))
            .subquery("earlier_in_chat"))


def _claiming_order(row) -> tuple:
    """The order the worker attempts a claim's rows in, as :func:`_claimable_rows` cuts them."""
    return row.lane_so_far, row.chat_rank, row.message_id


def _with_all_before(rows) -> list:
    """The rows whose chat's earlier pending rows are all among ``rows``, in message id order: a
    chat's n-th claimed row (from 0) goes when n pending rows of its chat come before it."""
    kept, taken = [], {}
    for row in sorted(rows, key=lambda r: r.message_id):
        n = taken.get(row.chat_id, 0)
        if row.pending_before == n:
            kept.append(row)
            taken[row.chat_id] = n + 1
        else:
            taken[row.chat_id] = -1  # a gap: nothing later of this chat goes in this claim
    return kept


# ---------------------------------------------------------------- one attempt


def attempt(ctx, message_id: int, owner: str, as_written=None) -> Outcome:
    """Try to send one leased message once, and record what happened.

    ``as_written``: the row :func:`enqueue` wrote under ``owner``'s lease, handed over by the caller
    right after that commit (the send endpoint's inline attempt) instead of being read back. Nothing
    else changes a message in between: no worker claims a leased row, no echo or status can name a
    message not sent yet, a resend needs a failed or unknown one; and recording the outcome is
    conditional on the lease, as always.
    """
    helpdesk, tables = ctx.helpdesk, ctx.state.tables
    o, m = tables["outbox"], helpdesk.tables.messages
    if as_written is not None and as_written.message_id == message_id:
        row = as_written
    else:
        with helpdesk.db.read() as conn:  # the outbox row and what is sent, in one query
            row = conn.execute(sa.select(o, m.c.status.label("m_status"), m.c.text.label("m_text"),
                                         m.c.content_uri.label("m_content_uri"),
                                         m.c.author_agent_id.label("m_author_agent_id"))
                               .select_from(o.outerjoin(m, m.c.id == o.c.message_id))
                               .where(o.c.message_id == message_id)).first()
    if row is None or row.state != "pending" or row.lease_owner != owner:
        return Outcome("busy", message_id)
    message = None if row.m_status is None else _Message(row.m_status, row.m_text, row.m_content_uri,
                                                           row.m_author_agent_id)
    now = ctx.clock()
    if message is None or message.status != "queued":
        # An echo or a status settled it while it waited (or it is gone): nothing left to send.
        return _settle(ctx, row, owner, Outcome("done", message_id))
    if row.maybe_sent and not _window_open(ctx, row.first_attempt_at, now):
        return _settle(ctx, row, owner, _unknown(message_id))
    # Only a message already tried: one that waited its turn behind an earlier message of its chat
    # (which took up to the hour) gets its own attempt before the age can fail it. Before the API
    # key's check: a message queued before the key was removed ends too (else it would hold its chat
    # back, and go out however late once a key is back).
    if not row.maybe_sent and row.attempts and now - row.created_at > MAX_QUEUE_AGE:
        return _settle(ctx, row, owner, _not_sent_within_the_hour(message_id, row.last_error))
    if ctx.client is None:
        return _settle(ctx, row, owner, _retry(ctx, row, now, maybe_sent=False,
                                               error="WAZZUP24_API_KEY is not set", retry_after=60))

    channel_id, chat_type, wazzup_chat_id = row.channel_id, row.chat_type, row.wazzup_chat_id
    if row.attempt_started_at is not None:
        # Under our own lease only enqueue() leaves an attempt marked (claim_due() and _record()
        # clear it): it recorded this first attempt and took its call from the limiter in the
        # commit that stored the message.
        if row.lease_until is None or row.lease_until <= now:
            return Outcome("busy", message_id)
        budget_taken = True
    else:
        if channel_id is None:
            try:
                with helpdesk.db.read() as conn:
                    recipient = _recipient(conn, ctx, row.chat_id)
                target = _choose_channel(ctx, recipient, ctx.list_channels)  # may ask Wazzup: outside the read
            except ChannelSelectionError as exc:
                return _settle(ctx, row, owner, Outcome("failed", message_id, error_code=exc.code,
                                                        error_text=str(exc), channel_problem=True))
            except WazzupError as exc:
                return _settle(ctx, row, owner, _failure(ctx, row, now, exc, before_send=True))
            if target is None:
                return _settle(ctx, row, owner, Outcome("failed", message_id, error_code="NO_RECIPIENT",
                                                        error_text="The chat has neither a Wazzup chat id nor a phone."))
            channel_id, chat_type, wazzup_chat_id = target
        started = _start_attempt(ctx, row, owner, channel_id, chat_type, wazzup_chat_id)
        if started is None:
            return Outcome("busy", message_id)
        row, budget_taken, now = started
        if row.maybe_sent and not _window_open(ctx, row.first_attempt_at, now):
            # Waiting for the write lock took us past the last safe moment: this attempt must not go
            # out (Wazzup would no longer dedupe it). Nothing was sent; an earlier attempt may have been.
            return _settle(ctx, row, owner, _unknown(message_id))
    body = {"channelId": channel_id, "chatType": chat_type, **recipient_fields(wazzup_chat_id),
            "crmMessageId": row.crm_message_id}
    if row.template_id:
        body["templateId"] = row.template_id
        body["templateValues"] = json.loads(row.template_values or "[]")
    elif message.content_uri:
        body["contentUri"] = message.content_uri
    else:
        body["text"] = message.text or ""
    if row.ref_message_id:
        body["refMessageId"] = row.ref_message_id
    if message.author_agent_id is not None:
        body["crmUserId"] = str(message.author_agent_id)
    context = {"chat_id": row.chat_id, "message_id": message_id, "crm_message_id": row.crm_message_id}
    try:
        answer = ctx.client.send_message(body, budget_taken=budget_taken)
    except WazzupApiError as exc:
        if exc.is_code("REPEATED_CRM_MESSAGE_ID"):
            log.info("Wazzup24 says an earlier attempt already went out (REPEATED_CRM_MESSAGE_ID): accepted",
                     extra={"context": context})
            return _settle(ctx, row, owner, Outcome("accepted", message_id))
        outcome = _failure(ctx, row, now, exc)
    except WazzupError as exc:
        outcome = _failure(ctx, row, now, exc)
    except Exception:  # a bug between us and the socket: assume the worst, retry carefully
        log.exception("unexpected error while sending through Wazzup24", extra={"context": context})
        outcome = _retry(ctx, row, now, maybe_sent=True, error="unexpected error")
    else:
        outcome = Outcome("accepted", message_id, wazzup_message_id=answer["messageId"],
                          wazzup_chat_id=answer.get("chatId"))
    return _settle(ctx, row, owner, outcome, latency_ms=ctx.client.last_latency_ms)


def _window_open(ctx, first_attempt_at, now) -> bool:
    """Whether a retry sent now surely reaches Wazzup inside its dedupe window."""
    if first_attempt_at is None:
        return True
    margin = timedelta(seconds=ctx.settings.connect_timeout + ctx.limiter.max_wait + 2)
    return now + margin < first_attempt_at + DEDUPE_WINDOW


def _unknown(message_id: int) -> Outcome:
    return Outcome("unknown", message_id, error_code="MAYBE_SENT",
                   error_text="Wazzup did not confirm the message and it can no longer be retried safely: "
                              "it may or may not have reached the customer. Resend it if it did not.")


def _not_sent_within_the_hour(message_id: int, last_error: str | None) -> Outcome:
    """The hour rule's verdict, with the last attempt's reason (Wazzup unreachable, no API key…)."""
    text = (f"Not sent within an hour: nothing went out. The last attempt: {last_error.rstrip('.')}. "
            "Resend it once that is fixed." if last_error else  # else a row from before the reasons were kept
            "Not sent within an hour: Wazzup could not be reached, and nothing went out. Resend it when Wazzup "
            "is back.")
    return Outcome("failed", message_id, error_code="NOT_SENT", error_text=text)


def _retry(ctx, row, now, *, maybe_sent: bool, error: str, retry_after: float | None = None,
           delay: float | None = None) -> Outcome:
    """``delay``: a fixed wait instead of the growing backoff, for a message surely never sent (a
    maybe-sent one keeps its short backoff: only Wazzup's dedupe window makes its retry safe)."""
    maybe_sent = maybe_sent or row.maybe_sent
    n = row.attempts  # attempts already counted, this one included
    if maybe_sent:
        delay = MAYBE_BACKOFF[min(max(n - 1, 0), len(MAYBE_BACKOFF) - 1)]
    elif delay is None:
        delay = SURE_BACKOFF[min(max(n - 1, 0), len(SURE_BACKOFF) - 1)]
    if retry_after is not None:
        delay = max(delay, retry_after)
    retry_at = now + timedelta(seconds=delay)
    if maybe_sent:
        first = row.first_attempt_at or now
        if not _window_open(ctx, first, retry_at):
            # Retry at the last safe moment, or give the verdict now if there is none.
            last_safe = first + DEDUPE_WINDOW - timedelta(
                seconds=ctx.settings.connect_timeout + ctx.limiter.max_wait + 3)
            if last_safe <= now:
                return _unknown(row.message_id)
            retry_at = last_safe
    return Outcome("retry", row.message_id, error_text=error, retry_at=retry_at,
                   error_code="MAYBE_SENT" if maybe_sent else "NOT_SENT")


def _failure(ctx, row, now, exc: WazzupError, before_send: bool = False) -> Outcome:
    if isinstance(exc, WazzupAuthError):
        # The message's reason is read by agents (the API's answer names the setting for integrators).
        return Outcome("failed", row.message_id, error_code="WAZZUP_AUTH", error_text=human_text("WAZZUP_AUTH"),
                       auth_failure=True)
    if isinstance(exc, WazzupRateLimited):
        return _retry(ctx, row, now, maybe_sent=False, error=exc.message,
                      retry_after=exc.retry_after if exc.retry_after is not None else ctx.settings.rate_window)
    if isinstance(exc, WazzupUnavailable):
        return _retry(ctx, row, now, maybe_sent=exc.maybe_sent and not before_send, error=exc.message)
    if isinstance(exc, WazzupApiError) and exc.is_code("MESSAGE_CHANNEL_UNAVAILABLE"):
        # "Wait a minute": the channel is starting up or its phone is offline. A refusal, so nothing
        # went out (and Wazzup's dedupe window does not limit the retries). Failed with Wazzup's code
        # once the next retry would come near MAX_QUEUE_AGE (a late worker would then fail it by the
        # hour rule: NOT_SENT, with this only as the last attempt's reason).
        if now + timedelta(seconds=2 * CHANNEL_UNAVAILABLE_RETRY) - row.created_at <= MAX_QUEUE_AGE:
            return _retry(ctx, row, now, maybe_sent=False, delay=CHANNEL_UNAVAILABLE_RETRY,
                          error="The channel's phone is unavailable at Wazzup (MESSAGE_CHANNEL_UNAVAILABLE: "
                                "wait a minute).")  # the row, pending, says it is retried
    if isinstance(exc, WazzupApiError):
        code = exc.code.upper()
        text = human_text(code) or exc.description or f"Wazzup refused the message ({code})."
        return Outcome("failed", row.message_id, error_code=code, error_text=text,
                       channel_problem=normalize_code(code) in CHANNEL_CODES)
    if isinstance(exc, WazzupInvalidData):
        return Outcome("failed", row.message_id, error_code="INVALID_DATA", error_text=exc.message)
    return _retry(ctx, row, now, maybe_sent=True, error=exc.message)


def _start_attempt(ctx, row, owner, channel_id, chat_type, wazzup_chat_id):
    """Record the attempt before the call: whoever finds it unfinished knows it may have gone out.

    The call's rate-limit budget is taken in the same commit when it is free now (else the client
    waits for it, outside any transaction). Returns (the updated row, whether the budget was taken,
    the time after the commit), or None when the lease is no longer ours. Waiting for the write lock
    (SQLite's writers queue, a row another transaction holds on PostgreSQL) and for the commit can
    take seconds: the caller checks Wazzup's dedupe window against the time read after them."""
    o = ctx.state.tables["outbox"]
    with ctx.helpdesk.db.write() as tx:
        now = ctx.clock()  # SQLite: the write lock is ours already (BEGIN IMMEDIATE)
        started = tx.conn.execute(sa.update(o).where(
            o.c.message_id == row.message_id, o.c.lease_owner == owner, o.c.state == "pending",
            o.c.lease_until > now,
        ).values(attempts=o.c.attempts + 1, attempt_started_at=now,
                 first_attempt_at=sa.func.coalesce(o.c.first_attempt_at, now),
                 lease_until=now + timedelta(seconds=lease_seconds(ctx)),
                 channel_id=channel_id, chat_type=chat_type, wazzup_chat_id=wazzup_chat_id, updated_at=now)
            .returning(*o.c)).first()
        if started is None:
            return None
        budget_taken = _budget_ours(ctx) and ctx.limiter.take(tx.conn) <= 0
    return started, budget_taken, ctx.clock()


# ---------------------------------------------------------------- recording the result


def _settle(ctx, row, owner, outcome: Outcome, latency_ms=None) -> Outcome:
    """Record the outcome (only while the lease is still ours), then log it."""
    settled = _record(ctx, row, owner, outcome)
    if settled.kind != "busy":
        context = {"chat_id": row.chat_id, "message_id": row.message_id, "crm_message_id": row.crm_message_id,
                   "attempt": row.attempts}
        _log_outcome(settled, context, latency_ms)
    return settled


def _last_error(outcome: Outcome) -> str | None:
    return outcome.error_text[:LAST_ERROR_LENGTH] if outcome.error_text else outcome.error_text


def _record(ctx, row, owner, outcome: Outcome) -> Outcome:
    helpdesk, tables = ctx.helpdesk, ctx.state.tables
    o = tables["outbox"]
    now = ctx.clock()
    values = {"lease_owner": None, "lease_until": None, "attempt_started_at": None, "updated_at": now}
    if outcome.kind == "retry":
        values.update(next_attempt_at=outcome.retry_at, last_error=_last_error(outcome))
        if row.attempt_started_at is None:
            # Failed before any call to Wazzup (its channel list unreachable, no API key): it counts
            # as an attempt all the same, or its backoff would never grow and the hour rule, which
            # needs one attempt, would never fail it (it would hold its chat back for ever).
            values.update(attempts=row.attempts + 1)
        if outcome.error_code == "MAYBE_SENT":
            values.update(maybe_sent=True, lane=LANE_MAYBE_SENT)  # once maybe sent, always (never cleared)
        elif not row.maybe_sent:
            # Nothing reached Wazzup yet (refused, 429): its dedupe window starts with the first attempt
            # that may reach it, not with these. A worker that dies mid-call leaves attempt_started_at,
            # and the next attempt's coalesce() then starts the window at that attempt.
            values.update(first_attempt_at=None)
    else:
        values.update(state="done", last_error=_last_error(outcome))
    names = tuple(sorted(values))
    stmt = built(o, ("record", names), lambda: sa.update(o).where(
        o.c.message_id == sa.bindparam("b_message_id"), o.c.state == "pending",
        o.c.lease_owner == sa.bindparam("b_owner", type_=o.c.lease_owner.type),
    ).values(**{n: sa.bindparam(f"b_{n}", type_=o.c[n].type) for n in names}).returning(o.c.message_id))
    with helpdesk.db.write() as tx:
        # The change counter first, as every writer takes it: a webhook echo of this send holds it and
        # then updates the send's Wazzup row, so taking that row before the counter could deadlock.
        _ = tx.change_seq
        # Only while the lease is still ours: the row lock the UPDATE takes makes the check and the write one step.
        mine = tx.conn.execute(stmt, {"b_message_id": row.message_id, "b_owner": owner,
                                      **{f"b_{n}": v for n, v in values.items()}}).first()
        if mine is None:
            if outcome.kind == "accepted" and _accept_late(tx, ctx, row, outcome, now):
                return outcome
            return Outcome("busy", row.message_id)
        if outcome.kind == "accepted":
            _accept(tx, ctx, row, outcome, now)
        elif outcome.kind in ("failed", "unknown"):
            move_status(tx, helpdesk, row.message_id, outcome.kind, now,
                        error_code=outcome.error_code, error_text=outcome.error_text)
            chat_id = _chat_now(tx, ctx, row)
            if _anything_parked(tx, ctx, chat_id):
                send_settled(tx, ctx.state, [chat_id])
    return outcome


def _chat_now(tx, ctx, row) -> int:
    """The chat the message is in as this transaction sees it. Only a message of a chat started by phone
    or username (or not yet addressed) can have moved since ``row`` was read: another message of its chat,
    answered first, may have moved the chat's messages into the customer's chat (``addresses.py``)."""
    if row.wazzup_chat_id is not None and address_of(row.wazzup_chat_id) is None:
        return row.chat_id
    m = ctx.helpdesk.tables.messages
    return tx.conn.execute(sa.select(m.c.chat_id).where(m.c.id == row.message_id)).scalar() or row.chat_id


def _accept_late(tx, ctx, row, outcome: Outcome, now) -> bool:
    """Wazzup accepted the message after our lease ran out (the call outlived it): its answer is
    recorded all the same, since it is the only word on what reached the customer. Meanwhile
    another holder may have taken the row up and, past the dedupe window, settled the message as
    ``unknown`` (which invites a resend by hand), or may hold it now.

    - The outbox row, if still pending, is done: its holder finds that before calling Wazzup and
      calls no more. A call it already has under way carries the same ``crmMessageId``: inside the
      dedupe window Wazzup answers ``REPEATED_CRM_MESSAGE_ID`` (accepted, recorded here too); past
      it the holder does not call and settles ``unknown``, which cannot move an accepted message.
      Its other outcomes find the row done and are dropped.
    - The message moves to ``accepted`` from ``queued`` or ``unknown`` (a later status stays), takes
      Wazzup's id unless it has one, and what was parked for that id applies (:func:`_accept`).

    Runs under the change counter, taken by ``_record`` before the outbox row, as every writer does.
    Returns False when the message is gone."""
    m, o = ctx.helpdesk.tables.messages, ctx.state.tables["outbox"]
    if tx.conn.execute(sa.select(m.c.status).where(m.c.id == row.message_id)).scalar() is None:
        return False
    tx.conn.execute(sa.update(o).where(o.c.message_id == row.message_id, o.c.state == "pending").values(
        state="done", lease_owner=None, lease_until=None, attempt_started_at=None, last_error=None, updated_at=now))
    log.warning("Wazzup24 accepted a message after this attempt's lease ran out; recording it",
                extra={"context": {"message_id": row.message_id, "wazzup_message_id": outcome.wazzup_message_id}})
    _accept(tx, ctx, row, outcome, now)
    return True


def _accept(tx, ctx, row, outcome: Outcome, now) -> None:
    w, wazzup_message_id = ctx.state.tables["messages"], outcome.wazzup_message_id
    if address_of(row.wazzup_chat_id) is not None and outcome.wazzup_chat_id is not None:
        # Sent by phone or username to a chat started so: Wazzup named the chat (the message may move).
        learn_chat_id(tx, ctx, row.chat_id, row.wazzup_chat_id, outcome.wazzup_chat_id)
    chat_id = _chat_now(tx, ctx, row)
    if wazzup_message_id:
        taken = _claim_wazzup_id(tx.conn, w, row.message_id, wazzup_message_id)
        if taken not in (None, row.message_id):
            log.warning("Wazzup24 message id already belongs to another stored message; keeping both",
                        extra={"context": {"message_id": row.message_id, "wazzup_message_id": wazzup_message_id,
                                           "other_message_id": taken}})
    move_status(tx, ctx.helpdesk, row.message_id, "accepted", now)
    tx.touched(chat_ids=[chat_id], message_ids=[row.message_id])
    if wazzup_message_id:
        if taken not in (None, row.message_id) or _anything_parked(tx, ctx, chat_id, wazzup_message_id):
            apply_parked(tx, ctx.state, [wazzup_message_id])
    elif _anything_parked(tx, ctx, chat_id):
        send_settled(tx, ctx.state, [chat_id])  # an echo parked meanwhile may bring the id


def _claim_wazzup_id(conn, w, message_id: int, wazzup_message_id: str) -> int | None:
    """Give the send's Wazzup row the id Wazzup answered with, unless a row already holds it.

    Returns ``None`` when the id was free (it is ours now, or our row already had another id), else
    the message holding it (ours or another). One conditional UPDATE in the usual case: it runs
    under the change counter, where every round trip holds up every other writer."""
    def build_claim():
        holder = w.alias("holder")
        return sa.update(w).where(
            w.c.message_id == sa.bindparam("b_message_id"), w.c.wazzup_message_id.is_(None),
            ~sa.exists().where(holder.c.wazzup_message_id == sa.bindparam("b_wid", type_=w.c.wazzup_message_id.type)),
        ).values(wazzup_message_id=sa.bindparam("b_wid")).returning(w.c.message_id)

    claim = built(w, "claim_wazzup_id", build_claim)
    if conn.execute(claim, {"b_message_id": message_id, "b_wid": wazzup_message_id}).first() is not None:
        return None
    holder = built(w, "wazzup_id_holder", lambda: sa.select(w.c.message_id).where(
        w.c.wazzup_message_id == sa.bindparam("b_wid", type_=w.c.wazzup_message_id.type)))
    return conn.execute(holder, {"b_wid": wazzup_message_id}).scalar()


def _anything_parked(tx, ctx, chat_id: int, wazzup_message_id: str | None = None) -> bool:
    """Whether ``apply_parked``/``send_settled`` would find anything for this send: an item parked
    under its Wazzup id, or an echo parked in its chat. Almost always nothing, and one EXISTS costs
    less than their lookups.

    The change counter is taken first, as they do: a delivery decides what to park only while it
    holds the counter, so it has either committed before we look or waits until we commit."""
    p = ctx.state.tables["parked"]
    _ = tx.change_seq

    def build():
        condition = sa.and_(p.c.kind == "echo", p.c.chat_id == sa.bindparam("b_chat_id"))
        if wazzup_message_id:
            condition = sa.or_(condition, p.c.wazzup_message_id == sa.bindparam(
                "b_wid", type_=p.c.wazzup_message_id.type))
        return sa.select(sa.exists().where(condition))

    stmt = built(p, ("anything_parked", bool(wazzup_message_id)), build)
    params = {"b_chat_id": chat_id, **({"b_wid": wazzup_message_id} if wazzup_message_id else {})}
    return bool(tx.conn.execute(stmt, params).scalar())


def move_status(tx, helpdesk, message_id: int, new: str, now, **values) -> bool:
    """Move a message forward (never back: a webhook may already have advanced it)."""
    m = helpdesk.tables.messages
    names = tuple(sorted(values))
    # One conditional UPDATE: it moves the message only from a status that may move to ``new``.
    stmt = built(m, ("move_status", new, names), lambda: sa.update(m).where(
        m.c.id == sa.bindparam("b_id"), m.c.status.in_(_MOVES_TO[new])).values(
        status=new, **{TIMESTAMP_COLUMN[new]: sa.bindparam("b_at", type_=m.c[TIMESTAMP_COLUMN[new]].type)},
        change_seq=sa.bindparam("b_seq", type_=m.c.change_seq.type),
        **{n: sa.bindparam(f"b_{n}", type_=m.c[n].type) for n in names}).returning(m.c.chat_id))
    chat_id = tx.conn.execute(stmt, {"b_id": message_id, "b_at": now, "b_seq": tx.change_seq,
                                     **{f"b_{n}": v for n, v in values.items()}}).scalar()
    if chat_id is None:
        return False
    tx.touched(chat_ids=[chat_id], message_ids=[message_id])
    return True


# For each status, the statuses a message may move to it from (statuses.can_move, inverted).
_MOVES_TO = {new: sorted(old for old in TRANSITIONS if can_move(old, new)) for new in TIMESTAMP_COLUMN}


def _log_outcome(outcome: Outcome, context: dict, latency_ms) -> None:
    context = {**context, "status": outcome.kind, "latency_ms": latency_ms}
    if outcome.wazzup_message_id:
        context["wazzup_message_id"] = outcome.wazzup_message_id
    if outcome.kind == "accepted":
        log.info("Wazzup24 message sent successfully (chat_id=%s message_id=%s wazzup_message_id=%s)",
                 context["chat_id"], context["message_id"], outcome.wazzup_message_id, extra={"context": context})
    elif outcome.kind == "done":
        log.info("Wazzup24 send settled by a webhook before it was retried (chat_id=%s message_id=%s)",
                 context["chat_id"], context["message_id"], extra={"context": context})
    elif outcome.kind == "retry":
        context.update(retry_at=outcome.retry_at.isoformat() if outcome.retry_at else None)
        log.warning("Wazzup24 send will be retried (chat_id=%s message_id=%s): %s", context["chat_id"],
                    context["message_id"], outcome.error_text, extra={"context": context})
    else:
        context.update(error_code=outcome.error_code)
        log.warning("Wazzup24 send %s (chat_id=%s message_id=%s): %s %s", outcome.kind, context["chat_id"],
                    context["message_id"], outcome.error_code, outcome.error_text, extra={"context": context})
