"""Profile one benchmarked request in-process with pyinstrument (not part of ``bench.all``).

    .venv/bin/python -m bench.profile browse-cursor --db sqlite
    .venv/bin/python -m bench.profile ingest-1 --db postgres --requests 300
    .venv/bin/python -m bench.profile ingest-1 --db sqlite --requests 3000 --timing   # no profiler: mean, p50
    .venv/bin/python -m bench.profile ingest-1 --db postgres --requests 1500 --timing --wal-records
    .venv/bin/python -m bench.profile send-async --db postgres --requests 500 --timing  # Prefer: respond-async

The app is built exactly as gunicorn builds it (``create_app`` over the product's settings) and
called through Falcon's test client, so the profile shows our code, not the network.
pyinstrument is a benchmark tool, not a product dependency: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import falcon.testing
import sqlalchemy as sa

from bench import bulk, payloads
from bench.common import build_app, webhook_headers
from bench.databases import create_product_schema, product_plugin_manager, throwaway_database
from bench.harness import free_port

CASES = ("browse-first", "browse-cursor", "browse-messages", "ingest-1", "ingest-100", "ingest-redelivery", "send",
         "send-async", "probe-1", "probe-100")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("case", choices=CASES)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--chats", type=int, default=100_000, help="browse: chats generated")
    p.add_argument("--html", help="write pyinstrument's HTML report here too")
    p.add_argument("--timing", action="store_true",
                   help="no profiler: time each request and print the mean and p50 (before/after figures)")
    p.add_argument("--wal-records", action="store_true",
                   help="with --timing on PostgreSQL: the WAL each request wrote, by relation and record "
                        "(pg_waldump; the server must run on this machine with its pg_wal readable)")
    args = p.parse_args(argv)

    with ExitStack() as stack:
        url = stack.enter_context(throwaway_database(args.db, "profile"))
        create_product_schema(url)
        extra = {}
        if args.case.startswith("send"):  # a real sandbox on the far side of the wire, limits out of the way
            from bench.send import SANDBOX_KEY, start_sandbox

            sandbox, sandbox_url = start_sandbox(free_port(), 1_000_000, 1.0)
            stack.callback(sandbox.stop)
            extra = dict(api_url=sandbox_url, WAZZUP24_API_KEY=SANDBOX_KEY, WAZZUP24_RATE_LIMIT="500",
                         WAZZUP24_RATE_WINDOW="0.1")
        if args.case.startswith("probe"):  # the bare-stack baseline of bench.ingest, in-process
            from bench.apps import create_probe_table, probe_app, product_engine

            create_probe_table(url)
            engine = product_engine(url)
            app = probe_app(engine)
        else:
            app = build_app(url, **extra)
            engine = app.helpdesk.db.engine
        stack.callback(engine.dispose)
        client = falcon.testing.TestClient(app)
        call = _prepare(args, url, client)
        warmup = 10
        for i in range(warmup):  # warm-up: imports, caches, statement compilation
            call(i)
        if args.db == "postgres" and args.case.startswith(("ingest", "probe")):
            from bench.ingest import _analyze

            # Planner statistics, as bench.ingest gives them after its warm-up, taken on tables of
            # the size the measured requests will see (statistics of ten rows plan sequential scans).
            warmup = max(10, args.requests)
            for i in range(10, warmup):
                call(i)
            _analyze(url)
        if args.timing:
            _time(call, args, warmup, engine)
            return 0
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        for i in range(warmup, warmup + args.requests):
            call(i)
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        if args.html:
            with open(args.html, "w", encoding="utf-8") as f:
                f.write(profiler.output_html())
    return 0


def _time(call, args, start: int, engine) -> None:
    """Per request: wall time, this process's CPU and (PostgreSQL) the database server's CPU and
    the WAL it wrote.

    On a machine of two cores the server's CPU competes with the workers', so a flow that runs
    more statements pays twice: in the driver and in the server. WAL bytes are the one figure here
    that the machine's load cannot move: every row, index entry and commit record is in them, so
    they compare two schemas or two ways of writing exactly.
    """
    postgres = args.db == "postgres"
    times = []
    wal0 = _wal_lsn(engine) if postgres else 0
    cpu0, server0 = time.process_time(), _postgres_cpu() if postgres else 0.0
    for i in range(start, start + args.requests):
        t0 = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - t0)
    n = len(times)
    cpu = (time.process_time() - cpu0) / n
    server = (_postgres_cpu() - server0) / n if postgres else None
    wal1 = _wal_lsn(engine) if postgres else 0
    wal = (wal1 - wal0) / n
    times.sort()
    print(f"{args.case} on {args.db}: {n} requests in-process, "
          f"mean {statistics.fmean(times) * 1e3:.3f} ms, p50 {times[n // 2] * 1e3:.3f} ms, "
          f"our CPU {cpu * 1e3:.3f} ms" + (f", PostgreSQL's CPU {server * 1e3:.3f} ms, "
                                         f"WAL {wal:,.0f} bytes" if postgres else ""))
    if postgres and args.wal_records:
        _print_wal_records(engine, wal0, wal1, n)


def _print_wal_records(engine, start: int, end: int, n: int) -> None:
    """What ``pg_waldump`` read between two WAL positions, per request: records and bytes by
    relation and record type (full-page images included), largest first."""
    with engine.connect() as conn:
        wal_dir = Path(conn.execute(sa.text("SHOW data_directory")).scalar_one()) / "pg_wal"
        major = conn.execute(sa.text("SHOW server_version_num")).scalar_one()[:-4]
        names = dict(conn.execute(sa.text("SELECT pg_relation_filenode(oid)::text, relname FROM pg_class "
                                          "WHERE pg_relation_filenode(oid) IS NOT NULL")).all())
    waldump = shutil.which("pg_waldump") or f"/usr/lib/postgresql/{major}/bin/pg_waldump"
    lsn = lambda v: f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"  # noqa: E731
    out = subprocess.run([waldump, "-p", str(wal_dir), "-s", lsn(start), "-e", lsn(end)],
                         capture_output=True, text=True, check=True).stdout
    record = re.compile(r"rmgr: (\S+)\s+len \(rec/tot\):\s+\d+/\s*(\d+).*?desc: (\S+)(?:.*?rel \d+/\d+/(\d+))?")
    count, size = Counter(), Counter()
    for line in out.splitlines():
        m = record.search(line)
        if m:
            key = (names.get(m.group(4), m.group(4) or "-"), f"{m.group(1)}/{m.group(3)}")
            count[key] += 1
            size[key] += int(m.group(2))
    print("| relation | record | per request | bytes per request |\n|---|---|---|---|")
    for key in sorted(size, key=lambda k: -size[k]):
        if size[key] / n >= 10:  # the rest: page splits and the like, now and then
            print(f"| {key[0]} | {key[1]} | {count[key] / n:.2f} | {size[key] / n:,.0f} |")


def _wal_lsn(engine) -> int:
    """The server's current WAL position in bytes (shared by every database of the server: run
    nothing else against it while measuring)."""
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar_one())


def _postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process on this machine (user + system), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if not f.read().startswith("postgres"):
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def _prepare(args, url, client):
    if args.case.startswith("browse"):
        from bench.browse import make_token

        n_messages = args.chats * 10
        bulk.grow(url, product_plugin_manager(), (1, args.chats), (1, n_messages), args.chats, 1)
        headers = {"Authorization": f"Bearer {make_token(url)}"}
        if args.case == "browse-messages":
            return lambda i: _ok(client.simulate_get(f"/api/chats/{bulk.HOT_CHAT}/messages",
                                                     params={"limit": 50}, headers=headers))
        if args.case == "browse-first":
            return lambda i: _ok(client.simulate_get("/api/chats", params={"limit": 50}, headers=headers))
        cursor = _deep_cursor(client, headers, args.chats // 2)
        return lambda i: _ok(client.simulate_get("/api/chats", params={"limit": 50, "cursor": cursor},
                                                 headers=headers))
    if args.case.startswith("send"):
        from bench.browse import make_token
        from bench.send import CHATS, TEXT

        headers = {"Authorization": f"Bearer {make_token(url)}"}
        items = [payloads.message_item(payloads.message_id(1, 0, k), payloads.chat_id(k, CHATS)) for k in range(CHATS)]
        _ok(client.simulate_post("/api/webhook", body=payloads.delivery_body(items), headers=webhook_headers()))
        chats = [c["id"] for c in _ok(client.simulate_get("/api/chats", headers=headers)).json["items"]]
        if args.case == "send-async":  # answered once stored; nothing runs the outbox worker here
            headers = {**headers, "Prefer": "respond-async"}
        return lambda i: _ok(client.simulate_post(f"/api/chats/{chats[i % len(chats)]}/wazzup24/send",
                                                  json={"text": TEXT}, headers=headers))
    run = random.randrange(1, 2**30)
    batch = 100 if args.case in ("ingest-100", "probe-100") else 1
    pool = 500 if args.case == "ingest-redelivery" else None

    def body(i):
        ks = [(i * batch + j) % pool if pool else i * batch + j for j in range(batch)]
        return payloads.delivery_body([payloads.message_item(payloads.message_id(run, 0, k),
                                                             payloads.chat_id(k, 1000)) for k in ks])

    if pool:
        for start in range(0, pool, 100):
            items = [payloads.message_item(payloads.message_id(run, 0, k), payloads.chat_id(k, 1000))
                     for k in range(start, start + 100)]
            _ok(client.simulate_post("/api/webhook", body=payloads.delivery_body(items), headers=webhook_headers()))
    return lambda i: _ok(client.simulate_post("/api/webhook", body=body(i), headers=webhook_headers()))


def _deep_cursor(client, headers, position: int) -> str:
    cursor = None
    remaining = position
    while remaining > 0:  # page with the biggest pages the API allows
        limit = min(200, remaining)
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        cursor = _ok(client.simulate_get("/api/chats", params=params, headers=headers)).json["next_cursor"]
        remaining -= limit
    return cursor


def _ok(result):
    if result.status_code >= 300:
        raise RuntimeError(f"{result.status}: {result.text[:500]}")
    return result


if __name__ == "__main__":
    sys.exit(main())
