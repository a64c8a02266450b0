"""The outbox's claim as its backlog grows, beside a bare claim of the same rows.

    .venv/bin/python -m bench.claim --db both

A backlog of pending sends (Wazzup unreachable, or an integrator's broadcast queued behind the rate
limit) is generated in bulk in two shapes: one message to each of N chats, and N messages over 100
chats; N = 300, then 30,000. The worker's claim (``outbox.claim_due_rows``: 10 rows, each chat's in
order) is timed in-process, alternating call by call with a bare claim: the first 10 due rows by the
due index, leased in one UPDATE, in the same write transaction. The leases are lifted after each call
(untimed), so every call sees the same backlog. On SQLite the claim holds the write lock that every
webhook delivery waits for, so its time is time the helpdesk stops taking messages.
"""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa

from bench import bulk
from bench.common import build_app, run_section
from bench.databases import backends, create_product_schema, product_plugin_manager, throwaway_database
from bench.harness import percentile
from bench.report import Row, Section, Target, ratio, table

SIZES = (300, 30_000)
SHAPES = {"one message to each chat": lambda n: (n, 1), "100 chats": lambda n: (100, n // 100)}
CALLS = 60
BATCH = 10
GROWTH_LIMIT = 1.5


def _backlog(url: str, tables: dict, chats: int, per_chat: int) -> None:
    """``chats`` chats with ``per_chat`` pending sends each, written in bulk, ids in sending order."""
    n = chats * per_chat
    at = bulk.START
    writer = bulk.BulkWriter(url)
    messages = ({"id": m, "chat_id": (m - 1) % chats + 1, "direction": "out", "status": "queued", "type": "text",
                 "text": f"m{m}", "messenger_at": at, "created_at": at, "change_seq": 1} for m in range(1, n + 1))
    outbox = ({"message_id": m, "chat_id": (m - 1) % chats + 1, "state": "pending", "crm_message_id": f"crm-{m}",
               "attempts": 0, "maybe_sent": False, "next_attempt_at": at, "created_at": at, "updated_at": at,
               "lane": 2}  # an integrator's respond-async burst
              for m in range(1, n + 1))
    writer.write([(tables["chats"], bulk.chat_rows(1, chats, 1)), (tables["wazzup_chats"], bulk.wazzup_chat_rows(1, chats)),
                  (tables["messages"], messages), (tables["wazzup_outbox"], outbox)])
    writer.analyze()


def _tables() -> dict:
    from host_stub.schema import assemble_metadata

    metadata, _ = assemble_metadata(product_plugin_manager())
    return {name: metadata.tables[name] for name in ("chats", "wazzup_chats", "messages", "wazzup_outbox")}


def _bare_claim(helpdesk, o, now) -> list[int]:
    with helpdesk.db.write() as tx:
        ids = tx.conn.execute(sa.select(o.c.message_id).where(
            o.c.state == sa.literal_column("'pending'"), o.c.next_attempt_at <= now,
            sa.or_(o.c.lease_until.is_(None), o.c.lease_until <= now))
            .order_by(o.c.lane, o.c.next_attempt_at, o.c.message_id).limit(BATCH)).scalars().all()
        tx.conn.execute(sa.update(o).where(o.c.message_id.in_(ids)).values(lease_owner="bare",
                                                                         lease_until=now + timedelta(minutes=1)))
    return ids


def _release(helpdesk, o) -> None:
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(o).where(o.c.lease_owner.is_not(None)).values(lease_owner=None, lease_until=None))


def measure(backend: str, chats: int, per_chat: int) -> dict:
    from wazzup_plugin.outbound import outbox
    from wazzup_plugin.outbound.context import outbound

    with throwaway_database(backend, "claim") as url:
        create_product_schema(url)
        tables = _tables()
        _backlog(url, tables, chats, per_chat)
        app = build_app(url)
        helpdesk = app.helpdesk
        try:
            ctx = outbound(helpdesk)
            o = ctx.state.tables["outbox"]
            now = bulk.START + timedelta(hours=1)
            ctx.clock = lambda: now
            product, bare = [], []
            for i in range(CALLS):
                for name, samples in (("product", product), ("bare", bare))[:: 1 if i % 2 else -1]:
                    start = time.perf_counter()
                    got = (outbox.claim_due_rows(ctx, "bench", BATCH) if name == "product"
                           else _bare_claim(helpdesk, o, now))
                    samples.append((time.perf_counter() - start) * 1000)
                    assert len(got) == BATCH, (name, len(got))
                    _release(helpdesk, o)
        finally:
            helpdesk.db.engine.dispose()
    return {"product": percentile(product, 50), "bare": percentile(bare, 50),
            "product_p99": percentile(product, 99), "bare_p99": percentile(bare, 99)}


def section(args) -> Section:
    rows, targets = [], []
    for backend in backends(args.db):
        for shape, size_of in SHAPES.items():
            over = {}
            for n in SIZES:
                chats, per_chat = size_of(n)
                m = measure(backend, chats, per_chat)
                over[n] = ratio(m["product"], m["bare"])
                rows.append(Row(f"{backend} · {n:,} pending, {shape}", {
                    "claim p50 ms": m["product"], "claim p99 ms": m["product_p99"], "bare p50 ms": m["bare"],
                    "bare p99 ms": m["bare_p99"], "claim / bare p50": over[n]}))
            targets.append(Target(f"{backend}, {shape}: claim/bare growth {SIZES[0]:,} → {SIZES[-1]:,} pending",
                                  ratio(over[SIZES[-1]], over[SIZES[0]]), GROWTH_LIMIT, at_least=False))
    intro = (f"In-process, {CALLS} claims of {BATCH} rows per case, alternating call by call with a bare claim "
             "(the first due rows by the due index, leased in one UPDATE, same write transaction); leases "
             "lifted after each call. Backlogs generated in bulk, PostgreSQL ANALYZEd. Our own bar, not one "
             "of the issue's targets: a claim's cost over the bare claim's should not grow with the backlog.")
    return Section("Outbox claim as the backlog grows", intro=intro,
                   tables=[table(rows, ["claim p50 ms", "claim p99 ms", "bare p50 ms", "bare p99 ms",
                                        "claim / bare p50"])],
                   targets=targets)


def main(argv=None) -> int:
    return run_section(__doc__, section, argv)


if __name__ == "__main__":
    raise SystemExit(main())
