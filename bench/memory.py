"""A worker's memory after ingesting 100,000 messages.

    .venv/bin/python -m bench.memory --db both

The product under gunicorn (2 sync workers) receives 1,000 deliveries of 100 new messages each
(over 1,000 chats) from 4 concurrent senders; the workers' resident memory (VmRSS from /proc) is
read after start-up and warm-up, and again at the end.
"""

from __future__ import annotations

import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench import payloads
from bench.common import PRODUCT_APP, product_env, run_section, webhook_headers
from bench.databases import backends, create_product_schema, throwaway_database
from bench.harness import Server
from bench.report import Row, Section, Target, table

MESSAGES = 100_000
BATCH = 100
CHATS = 1000
SENDERS = 4
LIMIT_MB = 120


def _deliver(server_url: str, run: int, first_delivery: int, count: int) -> int:
    stored = 0
    with requests.Session() as http:
        for d in range(first_delivery, first_delivery + count):
            items = [payloads.message_item(payloads.message_id(run, 0, k), payloads.chat_id(k, CHATS))
                     for k in range(d * BATCH, (d + 1) * BATCH)]
            resp = http.post(server_url + "/api/webhook", data=payloads.delivery_body(items),
                             headers=webhook_headers(), timeout=120)
            resp.raise_for_status()
            stored += len(items)
    return stored


def measure(backend: str, messages: int = MESSAGES) -> dict:
    run = random.randrange(1, 2**29)
    deliveries = messages // BATCH
    with throwaway_database(backend, "memory") as url:
        create_product_schema(url)
        with Server(PRODUCT_APP, product_env(url), name=f"memory-{backend}", ready_path="/api/health") as server:
            for _ in range(20):  # both workers serve a few deliveries: code paths loaded, caches warm
                requests.get(server.url + "/api/health", timeout=10)
            _deliver(server.url, run + 1, 0, 10)
            after_warmup = server.worker_rss_mb()
            start = time.perf_counter()
            share = deliveries // SENDERS
            with ThreadPoolExecutor(SENDERS) as pool:
                sent = sum(pool.map(lambda i: _deliver(server.url, run, i * share, share), range(SENDERS)))
            seconds = time.perf_counter() - start
            at_end = server.worker_rss_mb()
    return {"after_warmup": after_warmup, "at_end": at_end, "sent": sent, "seconds": seconds}


def section(args) -> Section:
    sec = Section("Memory", intro=(
        f"gunicorn with 2 sync workers receives {MESSAGES:,} new messages ({MESSAGES // BATCH:,} deliveries "
        f"of {BATCH}, {SENDERS} concurrent senders, {CHATS:,} chats); VmRSS of each worker after warm-up "
        "and at the end."))
    rows = []
    for backend in backends(args.db):
        r = measure(backend)
        worst = max(r["at_end"]) if r["at_end"] else None
        rows.append(Row(backend, {
            "workers RSS after warm-up, MiB": " / ".join(f"{v:.0f}" for v in r["after_warmup"]),
            "workers RSS at end, MiB": " / ".join(f"{v:.0f}" for v in r["at_end"]),
            "largest growth, MiB": max((e - w for e, w in zip(r["at_end"], r["after_warmup"])), default=None),
            "messages": r["sent"], "msg/s": r["sent"] / r["seconds"]}))
        sec.targets.append(Target(f"{backend}: a worker's RSS after {MESSAGES:,} messages", worst, LIMIT_MB,
                                  at_least=False, unit=" MiB"))
    sec.tables.append(table(rows, ["workers RSS after warm-up, MiB", "workers RSS at end, MiB",
                                   "largest growth, MiB", "messages", "msg/s"], first="database"))
    return sec


def main(argv=None) -> int:
    return run_section(__doc__, section, argv)


if __name__ == "__main__":
    sys.exit(main())
