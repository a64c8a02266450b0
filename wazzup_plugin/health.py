"""``helpdesk-stub wazzup24 status``: the operator's view, from the database alone (no call to Wazzup).

The outbox backlog, when the webhook last received and the worker last ran (``heartbeats.py``),
the quarantine, parked items and the stored channel states, with a verdict per problem. Exit 0 all
well, 1 something needs attention, 2 the database cannot be read: for cron, Nagios, systemd timers.

Every query stays off a full scan of the big tables: the backlog through the outbox's partial
index of pending rows, the last day's sends through primary keys (see :func:`first_outbox_id_since`).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import click
import sqlalchemy as sa

from wazzup_plugin import heartbeats
from wazzup_plugin.media.status import media_backlog, media_kept
from wazzup_plugin.outbound.outbox import LANE_BULK
from wazzup_plugin.outbound.file_quota import MB, QUOTA, quota_bytes, stored_files
from wazzup_plugin.outbound.file_rules import human_size
from wazzup_plugin.settings import attempt_seconds

EXIT_OK, EXIT_ATTENTION, EXIT_UNREADABLE = 0, 1, 2
DAY = timedelta(hours=24)
PENDING_TOO_LONG = timedelta(minutes=5)
WORKER_BEATS_MISSED = 3  # a worker looks dead once this many of its beats (and one send's time) are missing
QUOTA_NEARLY_FULL = 0.9  # a note once uploaded files take this share of WAZZUP24_FILES_QUOTA_MB


def first_outbox_id_since(conn, outbox: sa.Table, cutoff: datetime) -> int | None:
    """The smallest outbox ``message_id`` whose row was created at ``cutoff`` or later; None: no such row.

    A binary search over the primary key, one indexed probe per step (about 30 for a billion ids):
    ``created_at`` has no index, and one would cost every send a write. Message ids grow with time
    (each is drawn when the message is stored), so ``message_id >= this`` is the rows since then."""
    key, created = outbox.c.message_id, outbox.c.created_at
    # Two statements: SQLite answers a lone min() or max() from the key, both at once by a full scan.
    low, high = conn.execute(sa.select(sa.func.min(key))).scalar(), conn.execute(sa.select(sa.func.max(key))).scalar()
    if high is None:
        return None

    def created_from(k: int):  # the creation time of the first row at or after id k
        return conn.execute(sa.select(created).where(key >= k).order_by(key).limit(1)).scalar()

    if created_from(high) < cutoff:
        return None
    for _ in range(64):  # bounded: the range halves every step
        if low >= high:
            break
        middle = (low + high) // 2
        if created_from(middle) >= cutoff:
            high = middle
        else:
            low = middle + 1
    return conn.execute(sa.select(key).where(key >= low).order_by(key).limit(1)).scalar()


def _outbox(conn, tables, messages: sa.Table, now: datetime) -> dict:
    o = tables["outbox"]
    leased = o.c.lease_until > now
    # 'pending' as a literal: the planner proves the partial index ix_wazzup_outbox_due's condition.
    backlog = conn.execute(sa.select(
        sa.func.count(), sa.func.sum(sa.case((leased, 1), else_=0)),
        sa.func.sum(sa.case((sa.and_(sa.not_(leased) | o.c.lease_until.is_(None), o.c.attempts > 0), 1), else_=0)),
        sa.func.min(o.c.created_at), sa.func.sum(sa.case((o.c.lane == LANE_BULK, 1), else_=0)),
    ).where(o.c.state == sa.literal_column("'pending'"))).one()
    pending, leased_count, retrying, oldest = backlog[0], backlog[1] or 0, backlog[2] or 0, backlog[3]
    first = first_outbox_id_since(conn, o, now - DAY)
    settled = {}
    if first is not None:
        # Both keys bounded: a range of each primary key, never the whole messages table.
        settled = dict(conn.execute(
            sa.select(messages.c.status, sa.func.count())
            .select_from(o.join(messages, messages.c.id == o.c.message_id))
            .where(o.c.message_id >= first, messages.c.id >= first, messages.c.status.in_(("unknown", "failed")))
            .group_by(messages.c.status)).all())
    return {"pending": pending, "queued": pending - leased_count - retrying, "leased": leased_count,
            "retrying": retrying, "oldest_pending_at": oldest, "async": backlog[4] or 0,
            "sent_last_24h": first is not None,
            "unknown_last_24h": settled.get("unknown", 0), "failed_last_24h": settled.get("failed", 0)}


def collect(helpdesk, state, channels) -> dict:
    """Everything the report shows, read in one connection (raises SQLAlchemyError when it cannot)."""
    t = state.tables
    with helpdesk.db.read() as conn:
        outbox = _outbox(conn, t, helpdesk.tables.messages, helpdesk.clock())
        beats = heartbeats.read_heartbeats(conn, t["heartbeats"])
        q = t["quarantine"]
        quarantined, oldest_quarantined = conn.execute(sa.select(sa.func.count(), sa.func.min(q.c.received_at))).one()
        p = t["parked"]
        parked = dict(conn.execute(sa.select(p.c.kind, sa.func.count()).group_by(p.c.kind)).all())
        files = stored_files(conn, state)
        media = media_backlog(conn, state) + media_kept(conn, state)
        agents = _agents(conn, t["users"])
    return {"outbox": outbox, "heartbeats": beats, "quarantine": (quarantined, oldest_quarantined),
            "parked": parked, "channels": channels(), "files": files, "media": media, "agents": agents}


def _agents(conn, users: sa.Table) -> dict:
    """The agents made Wazzup users (``outbound/users.py``): one row per agent who sent, a small table.
    Those who left the helpdesk count apart: ``leaving`` (to be deleted from Wazzup), ``removed``."""
    active = users.c.left_at.is_(None)
    synced = sa.and_(active, users.c.synced_name.is_not(None), users.c.synced_name == users.c.name)
    leaving = sa.and_(users.c.left_at.is_not(None), users.c.removed_at.is_(None))

    def how_many(condition):
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    counts = conn.execute(sa.select(how_many(active), how_many(synced), how_many(leaving),
                                    how_many(users.c.removed_at.is_not(None)))).one()
    waiting = sa.or_(sa.and_(active, sa.not_(synced)), leaving)
    error = conn.execute(sa.select(users.c.last_error).where(waiting, users.c.last_error.is_not(None))
                         .order_by(users.c.next_try_at.desc().nulls_last()).limit(1)).scalar()
    return {"synced": counts[1], "waiting": counts[0] - counts[1], "leaving": counts[2], "removed": counts[3],
            "last_error": error}


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _age(now: datetime, at: datetime | None) -> float | None:
    return round((now - at).total_seconds(), 1) if at else None


def build_report(facts: dict, settings, now: datetime) -> dict:
    """The JSON report (keys documented in README, "Operations"), with ``problems`` and ``notes``."""
    outbox, beats = facts["outbox"], facts["heartbeats"]
    webhook = beats.get(heartbeats.WEBHOOK)
    previous = beats.get(heartbeats.WEBHOOK_PREVIOUS_SECRET)
    worker = beats.get(heartbeats.WORKER)
    # A worker inside a call to Wazzup (up to the timeouts) cannot beat: one send's time is allowed too.
    one_send = attempt_seconds(settings.connect_timeout, settings.read_timeout)
    alive = bool(worker and worker.every_seconds
                 and now - worker.at < timedelta(seconds=WORKER_BEATS_MISSED * worker.every_seconds + one_send))
    quarantined, oldest_quarantined = facts["quarantine"]
    report = {
        "checked_at": now.isoformat(),
        "outbox": {"pending": outbox["pending"], "queued": outbox["queued"], "leased": outbox["leased"],
                   "retrying": outbox["retrying"], "oldest_pending_at": _iso(outbox["oldest_pending_at"]),
                   "oldest_pending_age_seconds": _age(now, outbox["oldest_pending_at"]),
                   "async": outbox["async"], "async_limit": settings.async_backlog,
                   "sent_last_24h": outbox["sent_last_24h"], "unknown_last_24h": outbox["unknown_last_24h"],
                   "failed_last_24h": outbox["failed_last_24h"]},
        "webhook": {"last_received_at": _iso(webhook and webhook.at),
                    "last_received_age_seconds": _age(now, webhook and webhook.at),
                    "previous_secret_configured": bool(settings.webhook_secret_previous),
                    "previous_secret_last_used_at": _iso(previous and previous.at),
                    "previous_secret_last_used_age_seconds": _age(now, previous and previous.at)},
        "worker": {"last_heartbeat_at": _iso(worker and worker.at), "last_heartbeat_age_seconds":
                   _age(now, worker and worker.at), "heartbeat_every_seconds": worker and worker.every_seconds,
                   "alive": alive, "worker_id": worker and worker.detail},
        "quarantine": {"count": quarantined, "oldest_at": _iso(oldest_quarantined),
                       "oldest_age_seconds": _age(now, oldest_quarantined)},
        "parked": {"statuses": facts["parked"].get("status", 0), "echoes": facts["parked"].get("echo", 0)},
        "files": {"stored": facts["files"][0], "bytes": facts["files"][1], "quota_bytes": quota_bytes(settings)},
        "media": {"pending": facts["media"][0], "oldest_queued_at": _iso(facts["media"][1]),
                  "oldest_queued_age_seconds": _age(now, facts["media"][1]),
                  "stored": facts["media"][2], "bytes": facts["media"][3],
                  "retention_days": settings.media_retention_days or None},
        "channels": [{k: c[k] for k in ("channel_id", "transport", "plain_id", "state", "updated_at",
                                         "needs_action", "advice")} for c in facts["channels"]],
        "agents": {**facts["agents"], "sync": settings.sync_users},
    }
    report["problems"], report["notes"] = _verdicts(report)
    report["status"] = "attention" if report["problems"] else "ok"
    return report


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _verdicts(report: dict) -> tuple[list[dict], list[str]]:
    """(problems, each ``{"code", "message"}``: exit 1; notes: worth knowing, not failing)."""
    problems, notes = [], []
    outbox, worker, webhook, quarantine = report["outbox"], report["worker"], report["webhook"], report["quarantine"]
    if outbox["pending"] and not worker["alive"]:
        since = ("no outbox worker has ever run" if worker["last_heartbeat_at"] is None else
                 f"the worker has not run for {_ago(worker['last_heartbeat_age_seconds'])}")
        problems.append({"code": "worker_stale", "message": f"{since} while {outbox['pending']} message(s) wait: "
                                                            "start `helpdesk-stub wazzup24 worker` (or `serve`)"})
    age = outbox["oldest_pending_age_seconds"]
    if age is not None and age > PENDING_TOO_LONG.total_seconds():
        problems.append({"code": "pending_too_long", "message": f"the oldest queued message has waited {_ago(age)}: "
                                                                "see `helpdesk-stub wazzup24 test-connection`"})
    if quarantine["count"]:
        problems.append({"code": "quarantine_not_empty", "message": (
            f"{quarantine['count']} webhook item(s) in quarantine, the oldest {_ago(quarantine['oldest_age_seconds'])} "
            "old: see `helpdesk-stub wazzup24 quarantine list`")})
    received = webhook["last_received_age_seconds"]
    if outbox["sent_last_24h"] and (received is None or received > DAY.total_seconds()):
        problems.append({"code": "no_webhook", "message": (
            f"no webhook delivery for 24 h (last: {_ago(received)}{'' if received is None else ' ago'}) while messages "
            "were sent: check `helpdesk-stub wazzup24 test-connection`, then `set-webhook`")})
    used = webhook["previous_secret_last_used_age_seconds"]
    if used is not None and webhook["previous_secret_configured"]:
        notes.append(f"a delivery used the previous webhook secret {_ago(used)} ago: run `helpdesk-stub wazzup24 "
                     "set-webhook` again if this persists; remove WAZZUP24_WEBHOOK_SECRET_PREVIOUS once it stops")
    notes.extend(c["advice"] for c in report["channels"] if c["needs_action"] and c["advice"])
    if outbox["pending"] >= outbox["async_limit"]:
        notes.append(f"{outbox['pending']} message(s) wait in the outbox ({outbox['async']} in the lane of those "
                     f"sent with Prefer: respond-async): such sends are refused (429 wazzup_outbox_full) until fewer than "
                     f"{outbox['async_limit']} wait (WAZZUP24_ASYNC_BACKLOG)")
    files = report["files"]
    if files["quota_bytes"] and files["bytes"] >= QUOTA_NEARLY_FULL * files["quota_bytes"]:
        notes.append(f"uploaded files take {human_size(files['bytes'])} of the {files['quota_bytes'] // MB} MB "
                     f"allowed ({QUOTA}): uploads are refused once it is full; raise it, or set "
                     "WAZZUP24_FILE_RETENTION_DAYS")
    return problems, notes


def print_report(report: dict) -> None:
    outbox, webhook, worker = report["outbox"], report["webhook"], report["worker"]
    quarantine, parked = report["quarantine"], report["parked"]
    if not webhook["previous_secret_configured"]:
        previous = "not configured"
    else:
        used = webhook["previous_secret_last_used_age_seconds"]
        previous = "configured, not used" if used is None else f"configured, last used {_ago(used)} ago"
    if worker["last_heartbeat_at"] is None:
        worker_line = "never seen"
    else:
        worker_line = (f"{'alive' if worker['alive'] else 'STALE'}, last beat "
                       f"{_ago(worker['last_heartbeat_age_seconds'])} ago")
    rows = [
        ("Outbox queued", outbox["queued"]), ("Outbox sending", outbox["leased"]),
        ("Outbox retrying", outbox["retrying"]),
        ("Outbox async", f"{outbox['async']} (respond-async; refused while {outbox['async_limit']} wait in all)"),
        ("Oldest pending", "-" if outbox["oldest_pending_age_seconds"] is None
         else _ago(outbox["oldest_pending_age_seconds"])),
        ("Unknown (24 h)", outbox["unknown_last_24h"]), ("Failed (24 h)", outbox["failed_last_24h"]),
        ("Last webhook", _ago(webhook["last_received_age_seconds"])
         + ("" if webhook["last_received_age_seconds"] is None else " ago")),
        ("Previous secret", previous), ("Worker", worker_line),
        ("Quarantine", quarantine["count"] if not quarantine["count"]
         else f"{quarantine['count']}, oldest {_ago(quarantine['oldest_age_seconds'])}"),
        ("Parked", f"{parked['statuses']} status(es), {parked['echoes']} echo(es)"),
        ("Uploaded files", _files_line(report["files"])),
        ("Media backlog", report["media"]["pending"] if not report["media"]["pending"]
         else f"{report['media']['pending']}, oldest queued {_ago(report['media']['oldest_queued_age_seconds'])} ago"),
        ("Media kept", _media_line(report["media"])),
        ("Wazzup users", _agents_line(report["agents"])),
        *((("Channel", f"{c['channel_id']} {c['transport'] or '-'} {c['plain_id'] or '-'} [{c['state']}]")
           for c in report["channels"])),
    ]
    click.echo(f"Wazzup24 status: {report['status'].upper()}")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"  {label:<{width}}  {value}")
    for problem in report["problems"]:
        click.echo(f"! {problem['message']}")
    for note in report["notes"]:
        click.echo(f"  note: {note}")


def _files_line(files: dict) -> str:
    quota = files["quota_bytes"]
    return (f"{files['stored']}, {human_size(files['bytes'])}"
            + (f" of {quota // MB} MB" if quota else " (no quota)"))


def _agents_line(agents: dict) -> str:
    if not agents["sync"]:
        return "not synced (WAZZUP24_SYNC_USERS=0)"
    line = f"{agents['synced']} agent(s) synced, {agents['waiting']} waiting"
    if agents["leaving"] or agents["removed"]:  # agents who left the helpdesk
        line += f"; left: {agents['leaving']} to remove, {agents['removed']} removed"
    waiting = agents["waiting"] or agents["leaving"]
    return line + (f" ({agents['last_error']})" if waiting and agents["last_error"] else "")


def _media_line(media: dict) -> str:
    days = media["retention_days"]
    return (f"{media['stored']}, {human_size(media['bytes'])}"
            + (f" (kept {days} days)" if days else " (kept for good: WAZZUP24_MEDIA_RETENTION_DAYS)"))


def _reason(exc: Exception) -> str:
    """The driver's first line (SQLAlchemy's text adds the statement and its parameters)."""
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["unknown error"])[0][:300]


@click.command("status", help="The Wazzup24 channel's health from the database (no call to Wazzup): outbox, "
                              "webhook, worker, quarantine, channels. Exit 0 all well, 1 something needs "
                              "attention, 2 the database cannot be read or the helpdesk cannot start.")
@click.option("--json", "as_json", is_flag=True, help="one JSON object (keys in README, \"Operations\")")
def status_command(as_json):
    from wazzup_plugin.outbound.connection import stored_channels
    from wazzup_plugin.outbound.context import outbound

    try:
        helpdesk = click.get_current_context().obj.helpdesk()
        ctx = outbound(helpdesk)
    except Exception as exc:  # the host refused to start: an invalid setting, a database not migrated...
        # Still one JSON object for a monitor that parses it, saying why (the host's message names the fix).
        if as_json:
            click.echo(json.dumps({"status": "cannot_start", "reason": str(exc)[:500]}))
        click.echo(f"Wazzup24 status: the helpdesk cannot start: {exc}", err=True)
        raise SystemExit(EXIT_UNREADABLE) from None
    try:
        facts = collect(helpdesk, ctx.state, lambda: stored_channels(ctx))
    except sa.exc.SQLAlchemyError as exc:
        reason = _reason(exc)
        if as_json:
            click.echo(json.dumps({"status": "unreadable", "reason": reason}))
        click.echo(f"Wazzup24 status: cannot read the database: {reason}", err=True)
        raise SystemExit(EXIT_UNREADABLE) from None
    report = build_report(facts, ctx.settings, helpdesk.clock())
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
    else:
        print_report(report)
    raise SystemExit(EXIT_ATTENTION if report["problems"] else EXIT_OK)
