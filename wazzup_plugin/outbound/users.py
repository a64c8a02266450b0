"""The helpdesk's agents as Wazzup users, so that Wazzup shows which agent sent a message.

Every send carries its agent's id as ``crmUserId`` (``outbox.py``). Wazzup records it as the sender,
in its own chat window and mobile app, only when it has a user with that id (reference §3.1, §8.2):
teams who also read their chats in Wazzup's app see who answered only then. So:

- a send notes its agent's name in ``wazzup_users`` (:func:`note_agent`, in the transaction that
  stores the message): one statement, and only for an agent new to the process or renamed;
- the outbox worker posts the agents Wazzup does not have under their current name (:func:`sync`),
  about once a minute, in a thread of its own (``worker.py``), at most 100 in a call (Wazzup's limit).

Nothing here holds a message back: a send goes out with its ``crmUserId`` whether or not Wazzup has
the user yet. A failed post waits (:data:`WAIT_REFUSED`, :data:`WAIT_UNAVAILABLE`) and is logged once
per kind of failure. ``WAZZUP24_SYNC_USERS=0`` turns all of it off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from wazzup_plugin.client import (USER_FIELD_MAX, USERS_PER_CALL, WazzupApiError, WazzupAuthError, WazzupError,
                                  WazzupUnavailable)
from wazzup_plugin.store_common import built, dialect_insert

log = logging.getLogger(__name__)

SYNC_EVERY = 60.0  # seconds between the worker's posts: a new agent is a Wazzup user within about a minute
# After Wazzup refused (a Sidecar key's 403, a refused key, data it does not take): the same post would
# meet the same refusal, so it waits. When Wazzup could not be reached, or our rate limit was spent: soon.
WAIT_REFUSED = timedelta(hours=1)
WAIT_UNAVAILABLE = timedelta(minutes=5)
MAX_CALLS = 10  # per sync at most (1,000 agents): Wazzup is said to allow 1,000 users an account
_WARNED = "users.warned"  # state.extras: the kinds of failure logged since the last post Wazzup took


def agent_name(agent) -> str:
    """The name Wazzup shows for the agent: the one their messages carry (``author_name``), cut to
    Wazzup's 200 characters."""
    return (agent.display_name or agent.username or str(agent.id))[:USER_FIELD_MAX]


def note_agent(conn, ctx, agent) -> str | None:
    """Write the agent's name to ``wazzup_users`` in the caller's transaction, when this process has not
    written that name: returns it, to :func:`remember` once the transaction commits; else None (nothing
    written). A renamed agent waits for the worker again (and no longer for a failure's wait)."""
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
                                            where=t.c.name != insert.excluded.name)

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


def sync(ctx) -> int:
    """Post the agents Wazzup does not have under their current name (new, renamed, or due again after a
    failure), 100 a call; returns how many Wazzup took. Wazzup's failures are recorded on the rows and
    logged, never raised; a database error is raised (the worker logs it and tries at its next sync)."""
    if not ctx.settings.sync_users or ctx.client is None:
        return 0
    t = ctx.state.tables["users"]
    now = ctx.clock()
    with ctx.helpdesk.db.read() as conn:
        waiting = conn.execute(sa.select(t.c.agent_id, t.c.name).where(
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
            _warn_once(ctx, failure, exc)
            if failure.refused:  # Wazzup named the users it refused: the others go at the next sync
                _hold(ctx, failure.refused, failure.wait)
                continue
            # The same answer awaits the rest of this sync's agents: they wait with these.
            _hold(ctx, {row.agent_id: failure.error for row in waiting[start:]}, failure.wait)
            break
        _synced(ctx, batch)
        taken += len(batch)
    if taken:
        ctx.state.extras.get(_WARNED, set()).clear()  # a later failure is news again
        log.info("Wazzup24 has %s agent(s) as users under their current names", taken,
                 extra={"context": {"operation": "upsert_users", "agents": taken}})
    return taken


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


def _warn_once(ctx, failure: _Failure, exc: WazzupError) -> None:
    warned = ctx.state.extras.setdefault(_WARNED, set())
    if failure.kind in warned:
        return
    warned.add(failure.kind)
    hours = failure.wait.total_seconds() / 3600
    later = f"{hours:g} h" if hours >= 1 else f"{failure.wait.total_seconds() / 60:g} min"
    log.warning("Wazzup24 could not make the helpdesk's agents Wazzup users (%s); messages still go out, but "
                "Wazzup shows no agent as their sender until it can. Trying again in %s", exc.message, later,
                extra={"context": {"operation": "upsert_users", "kind": failure.kind}})


def _hold(ctx, errors: dict, wait: timedelta) -> None:
    """A failed post: these agents (id -> why) are posted again after ``wait``."""
    t = ctx.state.tables["users"]
    until = ctx.clock() + wait
    with ctx.helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(t).where(t.c.agent_id == sa.bindparam("b_id")).values(
            next_try_at=until, last_error=sa.bindparam("b_error")),
            [{"b_id": agent_id, "b_error": error[:500]} for agent_id, error in errors.items()])


def _synced(ctx, batch) -> None:
    """Wazzup has these names: the rows hold them as synced (a rename since then still differs, and goes next)."""
    t = ctx.state.tables["users"]
    now = ctx.clock()
    with ctx.helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(t).where(t.c.agent_id == sa.bindparam("b_id")).values(
            synced_name=sa.bindparam("b_name"), synced_at=now, next_try_at=None, last_error=None),
            [{"b_id": row.agent_id, "b_name": row.name} for row in batch])
