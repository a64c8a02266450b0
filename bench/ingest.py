"""Webhook ingest under wrk, side by side with the bare stack, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.ingest --db both

Cases (gunicorn, 2 sync workers, the same wrk settings for all):
  a     bare Falcon: parse the JSON delivery, answer JSON
  b     probe: a + one SQLAlchemy Core insert and commit (the product's engine settings)
  b100  probe: 100 messages per delivery, one executemany and commit
  c     the product's webhook, one new message per delivery, over 1,000 chats
  d     the product's webhook, 100 new messages per delivery
  e     the product's webhook, redelivery of messages it already stored (one per delivery)
"""

from __future__ import annotations

import random
import sys

import requests
import sqlalchemy as sa

from bench import apps, payloads
from bench.common import PRODUCT_APP, product_env, run_section, webhook_headers
from bench.databases import backends, create_product_schema, throwaway_database
from bench.harness import Server, WrkResult, lua_script, run_wrk
from bench.report import Row, Section, Target, ratio, table

CHATS = 1000
BATCH = 100
REDELIVERY_POOL = 2000
WEBHOOK = "/api/webhook"
WARMUP_SECONDS = 1
WARMUP_RUN_OFFSET = 2**30  # warm-up ids never collide with measured ones


def _wrk(server: Server, args, batch: int, run: int, pool: int | None = None,
         duration: float | None = None) -> WrkResult:
    body = payloads.webhook_body_lua(batch=batch, chats=CHATS, run=run, pool=pool)
    script = lua_script("POST", WEBHOOK, webhook_headers(), body_lua=body)
    return run_wrk(server.url + WEBHOOK, script, duration=duration or args.duration,
                   connections=args.connections, threads=args.threads, per_request=batch)


def _case(server: Server, args, batch: int, run: int, pool: int | None = None, count=None, settle=None):
    """Warm up (other ids), then measure; with ``count``, also the rows the measured run added.

    ``settle`` runs between the warm-up and the measurement (PostgreSQL: ANALYZE, see ``_analyze``)."""
    _wrk(server, args, batch, run + WARMUP_RUN_OFFSET, pool=pool, duration=WARMUP_SECONDS)
    if settle:
        settle()
    before = count() if count else 0
    result = _wrk(server, args, batch, run, pool=pool)
    return result, (count() - before if count else None)


def _count(url: str, table_name: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT count(*) FROM {table_name}")).scalar_one()
    finally:
        engine.dispose()


def _analyze(url: str) -> None:
    """Give PostgreSQL's planner statistics, as autovacuum does within a minute of a table's growth.

    A throwaway database has none: the planner then sizes tables from their pages and, a few thousand
    rows in, answers the webhook's ``IN (…100 ids…)`` lookups with sequential scans whose cost grows with
    every delivery (measured: a delivery of 100 went from 15 to 24 ms over its first 5,000 rows, and
    back to a flat 14 ms after ANALYZE). A production database is past that first minute.
    """
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    finally:
        engine.dispose()


def preload(server_url: str, run: int, pool: int, batch: int = 100) -> None:
    """Store ``pool`` messages whose ids the redelivery case will send again."""
    with requests.Session() as http:
        for start in range(0, pool, batch):
            items = [payloads.message_item(payloads.message_id(run, 0, k), payloads.chat_id(k, CHATS))
                     for k in range(start, min(pool, start + batch))]
            resp = http.post(server_url + WEBHOOK, data=payloads.delivery_body(items), headers=webhook_headers(),
                             timeout=60)
            resp.raise_for_status()


def measure(backend: str, args) -> dict:
    """Every case on one database; returns results by case name plus stored-row checks."""
    results: dict = {}
    run_base = random.randrange(1, 2**29)
    with Server("bench.apps:bare_app()", {}, name="bare") as server:
        results["a"], _ = _case(server, args, 1, run_base)
    with throwaway_database(backend, "probe") as url:
        apps.create_probe_table(url)
        with Server("bench.apps:probe_app()", {"BENCH_DATABASE_URL": url}, name="probe") as server:
            results["b"], _ = _case(server, args, 1, run_base)
            results["b100"], _ = _case(server, args, BATCH, run_base + 1)
    with throwaway_database(backend, "ingest") as url:
        create_product_schema(url)
        count = lambda: _count(url, "messages")  # noqa: E731
        settle = (lambda: _analyze(url)) if backend == "postgres" else None
        with Server(PRODUCT_APP, product_env(url), name=f"product-{backend}", ready_path="/api/health") as server:
            results["c"], results["c_stored"] = _case(server, args, 1, run_base + 2, count=count, settle=settle)
            results["d"], results["d_stored"] = _case(server, args, BATCH, run_base + 3, count=count,
                                                      settle=settle)
            # The redelivery pool is stored first, warm-up included, so every measured id is a repeat.
            preload(server.url, run_base + 4, REDELIVERY_POOL)
            preload(server.url, run_base + 4 + WARMUP_RUN_OFFSET, REDELIVERY_POOL)
            results["e"], results["e_stored"] = _case(server, args, 1, run_base + 4, pool=REDELIVERY_POOL,
                                                      count=count, settle=settle)
            results["chats"] = _count(url, "chats")
    return results


LABELS = {
    "a": "a · bare Falcon JSON POST",
    "b": "b · probe: 1 insert + commit",
    "b100": "b100 · probe: 100 rows, executemany",
    "c": "c · webhook, 1 new message",
    "d": "d · webhook, 100 new messages",
    "e": "e · webhook, redelivery (stored)",
}


def section(args) -> Section:
    sec = Section("Webhook ingest", intro=(
        f"gunicorn with 2 sync workers; wrk {args.threads} threads, {args.connections} connections, "
        f"{args.duration:g} s per case. New messages spread over {CHATS:,} chats; the redelivery case cycles "
        f"through {REDELIVERY_POOL:,} messages stored just before. The probe uses the product's engine "
        "settings (SQLite: WAL, synchronous=FULL, the product's default). `stored` counts rows the case "
        "added to `messages` (a completed request has always committed, so stored ≥ requests × batch). "
        "On PostgreSQL the product's database is ANALYZEd after each warm-up, as autovacuum would be within "
        "a minute: a throwaway database has no planner statistics and would plan sequential scans."))
    for backend in backends(args.db):
        r = measure(backend, args)
        rows = []
        for case in ("a", "b", "b100", "c", "d", "e"):
            w: WrkResult = r[case]
            rows.append(Row(LABELS[case], {
                "req/s": w.rps, "msg/s": w.msgs_per_s, "p50 ms": w.p50_ms, "p99 ms": w.p99_ms,
                "requests": w.requests, "non-2xx": w.non2xx + w.socket_errors,
                "stored": r.get(f"{case}_stored"),
            }))
        sec.tables.append(f"**{backend}**\n\n" + table(
            rows, ["req/s", "msg/s", "p50 ms", "p99 ms", "requests", "non-2xx", "stored"]))
        a, b, b100, c, d, e = (r[k] for k in ("a", "b", "b100", "c", "d", "e"))
        sec.tables.append(table([Row(backend, {
            "c/a req/s": ratio(c.rps, a.rps), "c/b req/s": ratio(c.rps, b.rps),
            "p99 c/b": ratio(c.p99_ms, b.p99_ms), "d/b100 msg/s": ratio(d.msgs_per_s, b100.msgs_per_s),
            "e/c req/s": ratio(e.rps, c.rps)})],
            ["c/a req/s", "c/b req/s", "p99 c/b", "d/b100 msg/s", "e/c req/s"], first="ratios"))
        sec.targets += [
            Target(f"{backend}: c ≥ 0.7 × b (req/s)", ratio(c.rps, b.rps), 0.7),
            Target(f"{backend}: p99(c) ≤ 3 × p99(b)", ratio(c.p99_ms, b.p99_ms), 3.0, at_least=False),
            Target(f"{backend}: d ≥ 0.5 × b100 (msg/s)", ratio(d.msgs_per_s, b100.msgs_per_s), 0.5),
            Target(f"{backend}: e ≥ 1.0 × c (req/s)", ratio(e.rps, c.rps), 1.0),
        ]
        for case in ("a", "b", "b100", "c", "d", "e"):
            if not r[case].ok:
                sec.notes.append(f"{backend} {case}: {r[case].non2xx} non-2xx answers, "
                                 f"{r[case].socket_errors} socket errors — the figures of this case are suspect.")
        for case in ("c", "d"):
            expected = r[case].requests * r[case].per_request
            if r[f"{case}_stored"] < expected:
                sec.notes.append(f"{backend} {case}: only {r[f'{case}_stored']:,} of {expected:,} messages stored.")
        if r["e_stored"]:
            sec.notes.append(f"{backend} e: redelivery stored {r['e_stored']:,} new rows (expected 0).")
    return sec


def main(argv=None) -> int:
    return run_section(__doc__, section, argv)


if __name__ == "__main__":
    sys.exit(main())
