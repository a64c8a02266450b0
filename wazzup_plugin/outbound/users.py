"""The helpdesk's agents as Wazzup users, so that Wazzup shows which agent sent a message.

Every send carries its agent's id as ``crmUserId`` (``outbox.py``). Wazzup records it as the sender,
in its own chat window and mobile app, only when it has a user with that id (reference §3.1, §8.2):
teams who also read their chats in Wazzup's app see who answered only then. So:

- a send notes its agent's name in ``wazzup_users`` (:func:`note_agent`, in the transaction that
  stores the message): one statement, and only for an agent new to the process or renamed;
- the outbox worker posts the agents Wazzup does not have under their current name (:func:`sync`),
  about once a minute, in a thread of its own (``worker.py``), at most 100 in a call (Wazzup's limit);
- an agent who leaves the helpdesk leaves Wazzup's users too (Wazzup allows about 1,000 an account,
  and its app would keep showing them): the host says so (``agents_access_changed``), which marks
  their row (:func:`access_changed`), and the worker's sync deletes the user (``DELETE /v3/users/:id``)
  and records it. An agent who comes back is posted again. An agent with no row never sent: Wazzup
  never had them.

Nothing here holds a message back: a send goes out with its ``crmUserId`` whether or not Wazzup has
the user yet. A failed call waits (:data:`WAIT_REFUSED`, :data:`WAIT_UNAVAILABLE`) and is logged once
per kind of failure. ``WAZZUP24_SYNC_USERS=0`` turns the sends' notes and the worker's calls off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from wazzup_plugin.client import (USER_FIELD_MAX, USERS_PER_CALL, WazzupApiError, WazzupAuthError, WazzupError,
                                  WazzupUnavailable)
from wazzup_plugin.state import get_state
from wazzup_plugin.store_common import built, dialect_insert

log = logging.getLogger(__name__)

SYNC_EVERY = 60.0  # seconds between the worker's posts: a new agent is a Wazzup user within about a minute
# After Wazzup refused (a Sidecar key's 403, a refused key, data it does not take): the same post would
# meet the same refusal, so it waits. When Wazzup could not be reached, or our rate limit was spent: soon.
WAIT_REFUSED = timedelta(hours=1)
WAIT_UNAVAILABLE = timedelta(minutes=5)
# At most this many calls a sync, of posts (1,000 agents: Wazzup is said to allow 1,000 users an account)
# and of deletions (one agent each: a team's leavers are few).
MAX_CALLS = 10
_WARNED = "users.warned"  # state.extras: the kinds of failure logged since the last call Wazzup took
_WARNINGS = {  # per operation: what a failure means for the team, and when it is tried again
    "upsert_users": "Wazzup24 could not make the helpdesk's agents Wazzup users (%s); messages still go out, but "
                    "Wazzup shows no agent as their sender until it can. Trying again in %s",
    "delete_user": "Wazzup24 could not remove agents who left the helpdesk from Wazzup's users (%s); they stay "
                   "there, counted against the account's users, until it can. Trying again in %s",
}


def agent_name(agent) -> str:
    """The name Wazzup shows for the agent: the one their messages carry (``author_name``), cut to
    Wazzup's 200 characters."""
    return (agent.display_name or agent.username or str(agent.id))[:USER_FIELD_MAX]


def note_agent(conn, ctx, agent) -> str | None:
    """Write the agent's name to ``wazzup_users`` in the caller's transaction, when this process has not
    written that name: returns it, to :func:`remember` once the transaction commits; else None (nothing
    written). A renamed agent waits for the worker again (and no longer for a failure's wait). An agent
    who left keeps their row as it is (a send racing their deactivation does not bring them back)."""
    if not ctx.settings.sync_users:
        return None
    name = agent_name(agent)
    if ctx.agent_names.get(agent.id) == name:
        return None
    t = ctx.state.tables["users"]

    def build():
        insert = dialect_insert(conn, t)
        return insert.on_conflict_do_update(index_elements=[t.c.agent_id],
                                            set_={"name": insert.excluded.name, "next_try_at": None},
                                            where=sa.and_(t.c.name != insert.excluded.name, t.c.left_at.is_(None)))

    conn.execute(built(t, ("note_agent", conn.dialect.name), build), {"agent_id": agent.id, "name": name})
    return name


def remember(ctx, agent_id: int, name: str | None) -> None:
    """The agent's name is in ``wazzup_users`` (its transaction committed): not written again by this process."""
    if name is not None:
        ctx.agent_names[agent_id] = name


@dataclass(frozen=True)
class _Failure:
    kind: str                 # logged once per kind
    wait: timedelta
    error: str                # kept as the rows' last_error
    refused: dict | None = None  # agent id -> why, when Wazzup named the users it refused; None: all of them


def access_changed(helpdesk, agent_ids, active: bool) -> None:
    """The host's word that these agents left the helpdesk (``active=False``) or came back
    (``agents_access_changed``), recorded for the worker's sync in one short write: no call to Wazzup.

    Left: the row is marked (``left_at``), and the sync deletes the Wazzup user. Back: the mark goes and
    the sync posts them again, from the row's name, whatever a process's ``Outbound.agent_names`` holds
    (a send then writes nothing: the row has their name). Posted again even when the deletion had not
    gone yet: it may have reached Wazzup unanswered. Agents without a row never sent: nothing to record."""
    t = get_state(helpdesk).tables["users"]
    if active:
        stmt = sa.update(t).where(t.c.agent_id == sa.bindparam("b_id"), t.c.left_at.is_not(None)).values(
            left_at=None, removed_at=None, synced_name=None, next_try_at=None, last_error=None)
    else:  # a wait after a failed post does not hold the deletion back
        stmt = sa.update(t).where(t.c.agent_id == sa.bindparam("b_id"), t.c.left_at.is_(None)).values(
            left_at=helpdesk.clock(), next_try_at=None, last_error=None)
    rows = [{"b_id": agent_id} for agent_id in sorted(agent_ids)]  # in key order: concurrent writes lock alike
    if rows:
        with helpdesk.db.write() as tx:
            tx.conn.execute(stmt, rows)


def sync(ctx) -> int:
    """Delete the users of agents who left, then post the agents Wazzup does not have under their current
    name (new, renamed, back, or due again after a failure), 100 a call; returns how many users Wazzup
    removed or took. Wazzup's failures are recorded on the rows and logged, never raised; a database
    error is raised (the worker logs it and tries at its next sync)."""
    if not ctx.settings.sync_users or ctx.client is None:
        return 0
    # Deletions first: they free places among Wazzup's users for the agents posted next.
    done = _remove_leavers(ctx) + _post_waiting(ctx)
    if done:
        ctx.state.extras.get(_WARNED, set()).clear()  # a later failure is news again
    return done


def _post_waiting(ctx) -> int:
    t = ctx.state.tables["users"]
    now = ctx.clock()
    with ctx.helpdesk.db.read() as conn:
        waiting = conn.execute(sa.select(t.c.agent_id, t.c.name).where(
            t.c.left_at.is_(None),
            sa.or_(t.c.synced_name.is_(None), t.c.synced_name != t.c.name),
            sa.or_(t.c.next_try_at.is_(None), t.c.next_try_at <= now),
        ).order_by(t.c.agent_id).limit(USERS_PER_CALL * MAX_CALLS)).all()
    taken = 0
    for start in range(0, len(waiting), USERS_PER_CALL):
        batch = waiting[start:start + USERS_PER_CALL]
        # The outbox's limiter, shared with the sends: a call only when one is free right now, never a
        # wait for one (the agents' messages come first; the next sync tries again).
        ours = getattr(ctx.client, "rate_limiter", None) is ctx.limiter
        if ours and ctx.limiter.try_acquire() > 0:
            break
        try:
            ctx.client.upsert_users([{"id": str(row.agent_id), "name": row.name} for row in batch], budget_taken=ours)
        except WazzupError as exc:
            failure = _failure(exc, batch)
            _warn_once(ctx, failure, exc, "upsert_users")
            if failure.refused:  # Wazzup named the users it refused: the others go at the next sync
                _hold(ctx, failure.refused, failure.wait)
                continue
            # The same answer awaits the rest of this sync's agents: they wait with these.
            _hold(ctx, {row.agent_id: failure.error for row in waiting[start:]}, failure.wait)
            break
        _synced(ctx, batch)
        taken += len(batch)
    if taken:
        log.info("Wazzup24 has %s agent(s) as users under their current names", taken,
                 extra={"context": {"operation": "upsert_users", "agents": taken}})
    return taken


def _remove_leavers(ctx) -> int:
    """Delete the users of agents who left, one call each (Wazzup documents no batch for it, §8.2), the
    longest gone first; returns how many Wazzup no longer has (a 404: it had none, which counts)."""
    t = ctx.state.tables["users"]
    now = ctx.clock()
    with ctx.helpdesk.db.read() as conn:
        leaving = conn.execute(sa.select(t.c.agent_id).where(
            t.c.left_at.is_not(None), t.c.removed_at.is_(None),
            sa.or_(t.c.next_try_at.is_(None), t.c.next_try_at <= now),
        ).order_by(t.c.left_at, t.c.agent_id).limit(MAX_CALLS)).scalars().all()
    removed = 0
    for index, agent_id in enumerate(leaving):
        ours = getattr(ctx.client, "rate_limiter", None) is ctx.limiter
        if ours and ctx.limiter.try_acquire() > 0:  # as the posts: only a call free right now
            break
        try:
            ctx.client.delete_user(str(agent_id), budget_taken=ours)
        except WazzupError as exc:
            failure = _failure(exc, ())
            _warn_once(ctx, failure, exc, "delete_user")
            if isinstance(exc, WazzupApiError):  # Wazzup refused this one: the others may go
                _hold(ctx, {agent_id: failure.error}, failure.wait)
                continue
            # Unreachable, or our key refused: the same answer awaits the rest, who wait with this one.
            _hold(ctx, {other: failure.error for other in leaving[index:]}, failure.wait)
            break
        _removed(ctx, agent_id)
        removed += 1
    if removed:
        log.info("Wazzup24 removed %s agent(s) who left the helpdesk from Wazzup's users", removed,
                 extra={"context": {"operation": "delete_user", "agents": removed}})
    return removed


def _failure(exc: WazzupError, batch) -> _Failure:
    if isinstance(exc, WazzupUnavailable):  # also our own limiter spent, or Wazzup's 429
        return _Failure("unavailable", WAIT_UNAVAILABLE, exc.message)
    if isinstance(exc, WazzupAuthError):
        return _Failure(f"auth {exc.http_status}", WAIT_REFUSED, exc.message)
    if isinstance(exc, WazzupApiError):
        refused = _refused_rows(exc, batch) if exc.is_code("INVALID_USERS_DATA") else {}
        if refused:
            return _Failure(exc.code, WAIT_REFUSED, exc.message, refused)
        return _Failure(exc.code, WAIT_REFUSED, exc.message)
    return _Failure(type(exc).__name__, WAIT_REFUSED, exc.message)  # e.g. a redirect: a wrong WAZZUP24_API_URL


def _refused_rows(exc: WazzupApiError, batch) -> dict:
    """agent id -> why, for the users ``INVALID_USERS_DATA``'s ``data`` names (``[{index, fields}]``)."""
    refused = {}
    for item in exc.data if isinstance(exc.data, list) else ():
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(batch):
            fields = item.get("fields")
            named = ", ".join(str(f) for f in fields)[:200] if isinstance(fields, list) and fields else "data"
            refused[batch[index].agent_id] = f"Wazzup refused this agent's {named} (INVALID_USERS_DATA)"
    return refused


def _warn_once(ctx, failure: _Failure, exc: WazzupError, operation: str) -> None:
    warned = ctx.state.extras.setdefault(_WARNED, set())
    if (operation, failure.kind) in warned:
        return
    warned.add((operation, failure.kind))
    hours = failure.wait.total_seconds() / 3600
    later = f"{hours:g} h" if hours >= 1 else f"{failure.wait.total_seconds() / 60:g} min"
    log.warning(_WARNINGS[operation], exc.message, later,
                extra={"context": {"operation": operation, "kind": failure.kind}})


def _hold(ctx, errors: dict, wait: timedelta) -> None:
    """A failed call: these agents (id -> why) are tried again after ``wait``."""
    t = ctx.state.tables["users"]
    until = ctx.clock() + wait
    with ctx.helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(t).where(t.c.agent_id == sa.bindparam("b_id")).values(
            next_try_at=until, last_error=sa.bindparam("b_error")),
            [{"b_id": agent_id, "b_error": error[:500]} for agent_id, error in errors.items()])


def _synced(ctx, batch) -> None:
    """Wazzup has these names: the rows hold them as synced (a rename since then still differs, and goes next).
    An agent who left meanwhile is deleted next, even if another sync removed them before this post landed."""
    t = ctx.state.tables["users"]
    now = ctx.clock()
    with ctx.helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(t).where(t.c.agent_id == sa.bindparam("b_id")).values(
            synced_name=sa.bindparam("b_name"), synced_at=now, next_try_at=None, last_error=None, removed_at=None),
            [{"b_id": row.agent_id, "b_name": row.name} for row in batch])


def _removed(ctx, agent_id: int) -> None:
    """Wazzup no longer has the agent as a user: recorded, so that they are neither deleted nor posted again
    while they are away; unless they came back meanwhile (then they are posted again)."""
    t = ctx.state.tables["users"]
    with ctx.helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(t).where(t.c.agent_id == agent_id, t.c.left_at.is_not(None)).values(
            removed_at=ctx.clock(), synced_name=None, next_try_at=None, last_error=None))
