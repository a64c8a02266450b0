"""``helpdesk-stub wazzup24 quarantine list | replay``: the items the webhook could not store.

The webhook answers 200 to a delivery with an odd item (one item never costs the rest), so Wazzup
never sends that item again: ``wazzup_quarantine`` holds its only copy, as received (JSON), with the
reason. ``list`` shows what is there without the items' contents (ids, chat, type: no text, no
links). ``replay`` parses each item again with the current parser (a fix, a newly documented word)
and stores the ones that fit exactly as a webhook delivery would: the webhook's writer
(``store.store_delivery``), its dedupe and ordering rules, in one transaction per batch, which also
removes them from the quarantine. A replayed message already stored is a duplicate, never a second
copy, so a replay may be repeated. Items that still do not fit stay, with the reason they fail now.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import click
import sqlalchemy as sa

from wazzup_plugin.inbound.parse import Delivery, parse_delivery
from wazzup_plugin.inbound.store import store_delivery
from wazzup_plugin.state import get_state

log = logging.getLogger(__name__)

BATCH = 200                      # items per replay transaction
SECTIONS = ("messages", "statuses", "channelsUpdates")
# What ``list`` shows of an item: identifiers and kinds, never its text, links or contact.
SUMMARY_KEYS = {"messages": ("messageId", "chatId", "chatType", "type", "isEcho", "status"),
                "statuses": ("messageId", "status"),
                "channelsUpdates": ("channelId", "state")}


def _not_a_list(section: str) -> str:
    """The reason ``parse_delivery`` gives a whole section that is not a list (its raw is the section)."""
    return f"{section} must be a list"


def printable(text: str) -> str:
    """``text`` safe to print on an operator's terminal, on one line: every character that is not
    printable (C0 and C1 controls such as ESC, DEL, line separators, bidi overrides, a lone surrogate
    from a JSON ``\\ud800`` escape) shown as a Python escape instead. A quarantined item is whatever a
    client posted: its ids may carry escape sequences that retitle or clear the terminal, or fake lines.

    The plugin's ``text.clean_text`` drops or replaces such characters for storage; this shows them.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else
                   f"\\x{ord(c):02x}" if ord(c) < 0x100 else
                   f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}" for c in text)


def _short(value, limit: int = 64):
    """An identifying field as ``list`` gives it: strings cut to ``limit`` characters (escaped only
    when printed as text: ``printable``; ``--json`` escapes them as JSON)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    return f"<{type(value).__name__}>"  # a wrong shape: say which, show nothing of it


def summarize(section: str, raw_item: str) -> dict:
    """A few identifying fields of a stored item (see ``SUMMARY_KEYS``)."""
    try:
        item = json.loads(raw_item)
    except ValueError:
        return {"shape": "not JSON"}
    if not isinstance(item, dict):
        return {"shape": type(item).__name__ if item is not None else "null"}
    return {k: _short(item[k]) for k in SUMMARY_KEYS.get(section, ()) if k in item}


def list_items(db, state, limit: int | None = 100, section: str | None = None) -> tuple[int, list[dict]]:
    """``(how many are quarantined in all, the first ``limit`` of them, oldest first)``."""
    q = state.tables["quarantine"]
    where = [q.c.section == section] if section else []
    with db.read() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(q).where(*where)).scalar_one()
        stmt = sa.select(q).where(*where).order_by(q.c.id)
        rows = conn.execute(stmt.limit(limit) if limit else stmt).all()
    return total, [{"id": r.id, "received_at": r.received_at.isoformat() if r.received_at else None,
                    "section": r.section, "wazzup_message_id": r.wazzup_message_id, "reason": r.reason,
                    "summary": summarize(r.section, r.item)} for r in rows]


@dataclass
class ReplayReport:
    examined: int = 0
    replayed: int = 0            # fit now: stored (or found stored) and removed from the quarantine
    still_quarantined: int = 0   # still do not fit: kept, with the reason they fail now
    new_messages: int = 0
    duplicates: int = 0          # messages that were stored already (a repeated replay, a redelivery)
    edited: int = 0
    statuses_applied: int = 0
    parked: int = 0
    channels: int = 0
    replayed_ids: list[int] = field(default_factory=list)
    kept_ids: list[int] = field(default_factory=list)
    missing_ids: list[int] = field(default_factory=list)  # asked for by id, not (or no longer) quarantined

    def as_dict(self) -> dict:
        return asdict(self)


def _reparse(section: str, reason: str, raw_item: str) -> tuple[Delivery | None, str | None]:
    """``(delivery, None)`` when the item fits the current parser, else ``(None, why not)``."""
    if section not in SECTIONS:
        return None, f"unknown section {section[:50]!r}"
    try:
        item = json.loads(raw_item)
    except ValueError:
        return None, "the stored item is not JSON"
    # A whole section that was not a list is stored as that section; anything else is one item.
    body = {section: item if reason == _not_a_list(section) else [item]}
    delivery = parse_delivery(body)
    if delivery.quarantined:
        return None, "; ".join(q.reason for q in delivery.quarantined)[:2000]
    return delivery, None


def replay(db, state, now, ids=None, batch: int = BATCH) -> ReplayReport:
    """Replay the quarantined items of ``ids`` (None: all of them), ``batch`` items per transaction."""
    q = state.tables["quarantine"]
    report = ReplayReport()
    wanted = sorted(set(ids)) if ids is not None else None
    after = 0
    while True:
        with db.write() as tx:
            conn = tx.conn
            stmt = sa.select(q).where(q.c.id > after).order_by(q.c.id).limit(batch)
            if wanted is not None:
                stmt = stmt.where(q.c.id.in_(wanted))
            # A concurrent replay waits here (PostgreSQL; SQLite's write transaction is exclusive),
            # then sees the rows this one removed as gone: an item is replayed once.
            rows = conn.execute(stmt.with_for_update()).all()
            if not rows:
                break
            after = rows[-1].id
            combined, fitted, kept = Delivery(), [], []
            for r in rows:
                delivery, why = _reparse(r.section, r.reason, r.item)
                if delivery is None:
                    kept.append((r, why))
                    continue
                combined.messages.extend(delivery.messages)
                combined.statuses.extend(delivery.statuses)
                combined.channels.extend(delivery.channels)
                fitted.append(r.id)
            # The webhook's own writer, in this transaction: same dedupe, parking and ordering rules.
            summary = store_delivery(tx, state, combined, now)
            if fitted:
                conn.execute(sa.delete(q).where(q.c.id.in_(fitted)))
            changed = [{"b_id": r.id, "b_reason": why} for r, why in kept if why != r.reason]
            if changed:
                conn.execute(sa.update(q).where(q.c.id == sa.bindparam("b_id"))
                             .values(reason=sa.bindparam("b_reason")), changed)
        report.examined += len(rows)
        report.replayed += len(fitted)
        report.still_quarantined += len(kept)
        report.replayed_ids.extend(fitted)
        report.kept_ids.extend(r.id for r, _ in kept)
        report.new_messages += len(summary.new)
        report.duplicates += len(summary.duplicates)
        report.edited += len(summary.edited)
        report.statuses_applied += summary.statuses_applied
        report.parked += len(summary.parked)
        report.channels += summary.channels
        if len(rows) < batch:
            break
    if wanted is not None:
        seen = set(report.replayed_ids) | set(report.kept_ids)
        report.missing_ids = [i for i in wanted if i not in seen]
    log.info("quarantine replayed", extra={"context": {
        k: v for k, v in report.as_dict().items() if not k.endswith("_ids")}})
    return report


# ------------------------------------------------------------------ commands


def _helpdesk():
    return click.get_current_context().find_root().obj.helpdesk()


@click.group("quarantine", help="Webhook items that did not fit (kept with their reason): list, replay.")
def quarantine_group():
    pass


@quarantine_group.command("list", help="List quarantined webhook items, oldest first (ids, chat, type; no content).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(0), help="at most this many (0: all)")
@click.option("--section", type=click.Choice(SECTIONS), default=None, help="only this section of the webhook")
@click.option("--json", "as_json", is_flag=True, help="one JSON object: total and items")
def list_command(limit, section, as_json):
    helpdesk = _helpdesk()
    total, items = list_items(helpdesk.db, get_state(helpdesk), limit or None, section)
    if as_json:
        # ASCII: a lone surrogate cannot be written to stdout, and control characters stay escapes.
        click.echo(json.dumps({"total": total, "items": items}, ensure_ascii=True))
        return
    if not total:
        click.echo("The quarantine is empty.")
        return
    for item in items:
        summary = " ".join(f"{k}={printable(str(v))}" for k, v in item["summary"].items())
        reason = printable(item["reason"] if len(item["reason"]) <= 200 else item["reason"][:200] + "…")
        click.echo(f"#{item['id']}  {item['received_at']}  {printable(item['section'])}  {summary or '-'}")
        click.echo(f"    reason: {reason}")
    shown = f"{len(items)} of {total}" if len(items) < total else f"{total}"
    click.echo(f"{shown} quarantined item(s). Replay: helpdesk-stub wazzup24 quarantine replay --id N | --all")


@quarantine_group.command("replay", help="Parse quarantined items again and store those that fit now, exactly as "
                                         "the webhook would (a message stored already is a duplicate). Exit 1 "
                                         "when some still do not fit, or an --id is not in the quarantine.")
@click.option("--id", "ids", multiple=True, type=click.IntRange(1), help="a quarantined item's id (repeatable)")
@click.option("--all", "all_", is_flag=True, help="every quarantined item")
@click.option("--batch", default=BATCH, show_default=True, type=click.IntRange(1, 5000),
              help="items per transaction")
@click.option("--json", "as_json", is_flag=True, help="the report as JSON")
def replay_command(ids, all_, batch, as_json):
    if bool(ids) == bool(all_):
        raise click.UsageError("give --id N (repeatable) or --all")
    helpdesk = _helpdesk()
    report = replay(helpdesk.db, get_state(helpdesk), helpdesk.clock(), ids=None if all_ else ids, batch=batch)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        click.echo(f"examined {report.examined}, replayed {report.replayed}, still quarantined "
                   f"{report.still_quarantined}")
        click.echo(f"  new messages {report.new_messages}, duplicates {report.duplicates}, edited {report.edited}, "
                   f"statuses applied {report.statuses_applied}, parked {report.parked}, "
                   f"channel updates {report.channels}")
        if report.kept_ids:
            click.echo(f"  still quarantined: {', '.join(f'#{i}' for i in report.kept_ids[:50])}"
                       f"{' …' if len(report.kept_ids) > 50 else ''} (see `quarantine list`)")
    if report.missing_ids:
        raise click.ClickException(f"not in the quarantine: {', '.join(f'#{i}' for i in report.missing_ids)} "
                                   "(replayed already, or no such item: see `quarantine list`)")
    if report.still_quarantined:
        raise SystemExit(1)
