"""Webhook ingest under wrk, side by side with the bare stack, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.ingest --db both

Cases (gunicorn, 2 sync workers, the same wrk settings for all):
  a     bare Falcon: parse the JSON delivery, answer JSON
  b     probe: a + one SQLAlchemy Core insert and commit (the product's engine settings)
  b100  probe: 100 messages per delivery, one executemany and commit
  c     the product's webhook, one new message per delivery, over 1,000 chats
  d     the product's webhook, 100 new messages per delivery
  e     the product's webhook, redelivery of messages it already stored (one per delivery)

Cases a-d run in rounds of short runs, all servers up at once, the order reversed every other round:
a case and its baseline are measured seconds apart, so a drift in the shared machine's speed moves
both, and each ratio's verdict is the median of the rounds' own ratios (their spread is shown).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from contextlib import ExitStack

import requests
import sqlalchemy as sa

from bench import apps, payloads
from bench.common import PRODUCT_APP, product_env, run_section, webhook_headers
from bench.databases import backends, create_product_schema, throwaway_database
from bench.harness import (ROUNDS, Server, WrkResult, alternating_rounds, combine_runs, lua_script,
                           round_ratios, round_seconds, run_wrk)
from bench.report import Row, Section, Target, ratio, table

CHATS = 1000
BATCH = 100
REDELIVERY_POOL = 2000
WEBHOOK = "/api/webhook"
WARMUP_SECONDS = 1
WARMUP_RUN_OFFSET = 2**30  # warm-up ids never collide with measured ones
ROUND_RUN_STRIDE = 8  # each round's ids: the case's run + round × stride (cases use offsets 0-4)
PAIRS = {"c/a": ("c", "a", "rps"), "c/b": ("c", "b", "rps"), "p99 c/b": ("c", "b", "p99_ms"),
         "d/b100": ("d", "b100", "msgs_per_s")}


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


def _rounds(cases: dict, args, count, settle) -> dict:
    """Warm every case up, then run them in ``ROUNDS`` rounds, reversing the order every other round.

    ``cases`` maps a name to (server, batch, run, counts rows); returns each name's list of runs and,
    where rows are counted, the rows its runs added."""
    for server, batch, run, _ in cases.values():
        _wrk(server, args, batch, run + WARMUP_RUN_OFFSET, duration=WARMUP_SECONDS)
    if settle:
        settle()
    runs: dict = {name: [] for name in cases}
    stored = {name: 0 for name, (_, _, _, counted) in cases.items() if counted}
    for i, order in alternating_rounds(list(cases), ROUNDS):
        for name in order:
            server, batch, run, counted = cases[name]
            before = count() if counted else 0
            runs[name].append(_wrk(server, args, batch, run + i * ROUND_RUN_STRIDE, duration=round_seconds(args)))
            after = _after_tail(server, count if counted else None)
            if counted:
                stored[name] += after - before
    return {"runs": runs, "stored": stored}


def _after_tail(server: Server, count=None, timeout: float = 10.0) -> int:
    """Let the requests wrk left queued at its end finish, so that they neither slow the next case's run
    nor count as its rows: one request behind them, then (with ``count``) rows until they stop growing.
    Returns the last count (0 without ``count``)."""
    requests.get(server.url + server.ready_path, timeout=timeout)
    if count is None:
        return 0
    last, deadline = count(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = count()
        if now == last:
            break
        last = now
    return last


def paired_ratios(runs: dict) -> dict[str, list[float]]:
    """Each ratio of ``PAIRS`` round by round (a case over the baseline measured beside it)."""
    return {label: round_ratios(runs[num], runs[den], attr) for label, (num, den, attr) in PAIRS.items()}


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
    with ExitStack() as stack:
        bare = stack.enter_context(Server("bench.apps:bare_app()", {}, name="bare"))
        probe_url = stack.enter_context(throwaway_database(backend, "probe"))
        apps.create_probe_table(probe_url)
        probe = stack.enter_context(Server("bench.apps:probe_app()", {"BENCH_DATABASE_URL": probe_url}, name="probe"))
        url = stack.enter_context(throwaway_database(backend, "ingest"))
        create_product_schema(url)
        product = stack.enter_context(Server(PRODUCT_APP, product_env(url), name=f"product-{backend}",
                                             ready_path="/api/health"))
        count = lambda: _count(url, "messages")  # noqa: E731
        settle = (lambda: _analyze(url)) if backend == "postgres" else None
        cases = {"a": (bare, 1, run_base, False), "b": (probe, 1, run_base, False),
                 "b100": (probe, BATCH, run_base + 1, False), "c": (product, 1, run_base + 2, True),
                 "d": (product, BATCH, run_base + 3, True)}
        measured = _rounds(cases, args, count, settle)
        results["runs"] = measured["runs"]
        results.update({name: combine_runs(runs) for name, runs in measured["runs"].items()})
        results.update({f"{name}_stored": rows for name, rows in measured["stored"].items()})
        # The redelivery pool is stored first, warm-up included, so every measured id is a repeat.
        preload(product.url, run_base + 4, REDELIVERY_POOL)
        preload(product.url, run_base + 4 + WARMUP_RUN_OFFSET, REDELIVERY_POOL)
        results["e"], results["e_stored"] = _case(product, args, 1, run_base + 4, pool=REDELIVERY_POOL,
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
        f"gunicorn with 2 sync workers; wrk {args.threads} threads, {args.connections} connections. Cases a-d: "
        f"all servers up at once, {ROUNDS} rounds of {round_seconds(args):g} s per case, the order reversed every "
        "other round, so that a case and its baseline are measured seconds apart; a case's req/s is over all its "
        "rounds, its p50 and p99 the median of its rounds', and each ratio's verdict is the median of the rounds' "
        f"own ratios (min-max beside it). Case e: one {args.duration:g} s run after them. "
        f"New messages spread over {CHATS:,} chats; the redelivery case cycles "
        f"through {REDELIVERY_POOL:,} messages stored just before. The probe uses the product's engine "
        "settings (SQLite: WAL, synchronous=FULL, the product's default). `stored` counts rows the case "
        "added to `messages` (a completed request has always committed, so stored ≥ requests × batch). "
        "On PostgreSQL the product's database is ANALYZEd after the warm-ups, as autovacuum would be within "
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
        c, e = r["c"], r["e"]
        paired = paired_ratios(r["runs"])
        median = {label: statistics.median(values) for label, values in paired.items()}
        spread = {f"{label} min-max": f"{min(values):.2f}-{max(values):.2f}" for label, values in paired.items()}
        sec.tables.append(table([Row(backend, {**median, "e/c req/s": ratio(e.rps, c.rps)})],
                                [*PAIRS, "e/c req/s"], first="ratios (median of rounds)"))
        sec.tables.append(table([Row(backend, spread)], list(spread), first="ratios over the rounds"))
        sec.targets += [
            Target(f"{backend}: c ≥ 0.7 × b (req/s)", median["c/b"], 0.7),
            Target(f"{backend}: p99(c) ≤ 3 × p99(b)", median["p99 c/b"], 3.0, at_least=False),
            Target(f"{backend}: d ≥ 0.5 × b100 (msg/s)", median["d/b100"], 0.5),
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
