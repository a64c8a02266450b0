"""Sending: the send endpoint's overhead over a direct POST to the sandbox, and the outbox draining
a backlog under the rate limit.

    .venv/bin/python -m bench.send --db both

1. Overhead: one client sends N messages through ``POST /api/chats/{id}/wazzup24/send`` and N
   straight to the sandbox's ``POST /v3/message`` with ``requests``, interleaved (so both see the
   same moments of a noisy machine), with a third call in each round: the same JSON posted to a
   bare Falcon app under gunicorn, the hop any endpoint of ours costs before it does anything.
   Rate limits are relaxed on both sides for this part so that nothing waits for budget: what is
   measured is our work per message (validate, store, commit, call, record the answer, commit).
2. Outbox: Wazzup is down (nothing listens) while agents send a backlog — every send is stored and
   answered 202. Then the sandbox comes up with Wazzup's ratio of limits (ours 50 per 1 s, the
   sandbox's 55 per 1 s, as 450 is to Wazzup's 500 per 5 s) and two outbox worker processes drain
   the backlog; the achieved rate is taken from the messages' ``accepted_at`` times, and the
   sandbox counts every 429 it answered.
"""

from __future__ import annotations

import socket
import sys
import time
import uuid

import requests
import sqlalchemy as sa

from bench import payloads
from bench.browse import make_token
from bench.common import PRODUCT_APP, product_env, run_section, webhook_headers
from bench.databases import backends, create_product_schema, throwaway_database
from bench.harness import Background, Server, free_port, percentile
from bench.report import Row, Section, Target, ratio, table

SANDBOX_KEY = "bench-sandbox-key-0123456789abcdef"
CHATS = 20
SENDS = 300
WARMUP = 20
TEXT = "Добрый день! Ваш заказ готов, его можно забрать сегодня до 20:00."
BACKLOG = 300
OUR_LIMIT, OUR_WINDOW = 50, 1.0       # what the product is configured with for the drain
SANDBOX_LIMIT = 55                   # Wazzup's own limit, in the same proportion as 450 is to 500
PICKUPS, PICKUP_PAUSE = 40, 0.3      # respond-async sends to an idle worker, one every 0.3 s


def start_sandbox(port: int, rate_limit: int, rate_window: float) -> tuple[Background, str]:
    url = f"http://127.0.0.1:{port}"
    sandbox = Background([sys.executable, "-m", "host_stub", "wazzup24", "sandbox", "--port", str(port),
                          "--api-key", SANDBOX_KEY, "--rate-limit", str(rate_limit)],
                         {"HELPDESK_PLUGINS": "wazzup24"}, name="sandbox", ready_url=url + "/_sandbox/health")
    requests.patch(url + "/_sandbox/config", json={"rate_window": rate_window}, timeout=10).raise_for_status()
    return sandbox, url


def make_chats(server_url: str, token_headers: dict, run: int) -> list[int]:
    """Customers write first (through the webhook), so there are Wazzup chats to answer."""
    items = [payloads.message_item(payloads.message_id(run, 0, k), payloads.chat_id(k, CHATS)) for k in range(CHATS)]
    requests.post(server_url + "/api/webhook", data=payloads.delivery_body(items), headers=webhook_headers(),
                  timeout=60).raise_for_status()
    page = requests.get(server_url + "/api/chats", params={"limit": CHATS}, headers=token_headers, timeout=30)
    page.raise_for_status()
    return [c["id"] for c in page.json()["items"]]


def overhead(backend: str) -> dict:
    with throwaway_database(backend, "send") as url:
        create_product_schema(url)
        token = {"Authorization": f"Bearer {make_token(url)}"}
        sandbox, sandbox_url = start_sandbox(free_port(), 1_000_000, 1.0)
        env = product_env(url, api_url=sandbox_url, WAZZUP24_API_KEY=SANDBOX_KEY,
                          WAZZUP24_RATE_LIMIT="500", WAZZUP24_RATE_WINDOW="0.1")
        try:
            with Server(PRODUCT_APP, env, name=f"send-{backend}", ready_path="/api/health") as server, \
                    Server("bench.apps:bare_app()", {}, name="send-bare") as bare:
                chats = make_chats(server.url, token, 7)
                sync_chats, async_chats = chats[:CHATS // 2], chats[CHATS // 2:]
                wazzup_chats = [payloads.chat_id(k, CHATS) for k in range(CHATS)]
                direct_ms, hop_ms, ours_ms, async_ms, statuses = [], [], [], [], {}
                with requests.Session() as direct, requests.Session() as hop, requests.Session() as ours:
                    for i in range(WARMUP + SENDS):
                        body = {"channelId": payloads.CHANNEL_ID, "chatType": "whatsapp",
                                "chatId": wazzup_chats[i % CHATS], "text": TEXT, "crmMessageId": str(uuid.uuid4())}
                        start = time.perf_counter()
                        r1 = direct.post(sandbox_url + "/v3/message", json=body,
                                         headers={"Authorization": f"Bearer {SANDBOX_KEY}"}, timeout=30)
                        t1 = (time.perf_counter() - start) * 1000
                        start = time.perf_counter()
                        hop.post(bare.url + "/api/webhook", json=body, timeout=30).raise_for_status()
                        t_hop = (time.perf_counter() - start) * 1000
                        start = time.perf_counter()
                        r2 = ours.post(f"{server.url}/api/chats/{sync_chats[i % len(sync_chats)]}/wazzup24/send",
                                       json={"text": TEXT},
                                       headers=token, timeout=60)
                        t2 = (time.perf_counter() - start) * 1000
                        start = time.perf_counter()
                        # Chats of their own: an async message waits for the worker, and a plain send to
                        # its chat would queue behind it (a 202 without calling Wazzup).
                        r3 = ours.post(f"{server.url}/api/chats/{async_chats[i % len(async_chats)]}/wazzup24/send",
                                       json={"text": TEXT},
                                       headers={**token, "Prefer": "respond-async"}, timeout=60)
                        t3 = (time.perf_counter() - start) * 1000
                        if i >= WARMUP:
                            direct_ms.append(t1)
                            hop_ms.append(t_hop)
                            ours_ms.append(t2)
                            async_ms.append(t3)
                            for key in (f"direct {r1.status_code}", f"ours {r2.status_code}",
                                        f"async {r3.status_code}"):
                                statuses[key] = statuses.get(key, 0) + 1
                # The async sends wait for the outbox worker, started only now so that it never runs
                # beside the measured calls; every one must be accepted.
                with Background([sys.executable, "-m", "host_stub", "wazzup24", "worker", "--poll", "0.2"], env,
                                name=f"send-worker-{backend}"):
                    outcomes = _outgoing_statuses(url, settle_s=60.0)
                # A worker as the product starts it (its default poll), idle when each message comes.
                with Background([sys.executable, "-m", "host_stub", "wazzup24", "worker"], env,
                                name=f"pickup-worker-{backend}"):
                    pickup_ms = _pickup(url, server.url, token, async_chats)
        finally:
            sandbox.stop()
    return {"direct": direct_ms, "hop": hop_ms, "ours": ours_ms, "async": async_ms, "statuses": statuses,
            "outcomes": outcomes, "pickup": pickup_ms}


def _pickup(url: str, server_url: str, token: dict, chats: list[int]) -> list[float]:
    """Respond-async sends made one at a time, each once the worker is idle again; per message, ms from
    being stored (``created_at``) to Wazzup's acceptance (``accepted_at``), both stamped by the product."""
    ids = []
    with requests.Session() as session:
        time.sleep(2.0)  # the worker's start: its first round done, idle
        for i in range(PICKUPS):
            r = session.post(f"{server_url}/api/chats/{chats[i % len(chats)]}/wazzup24/send", json={"text": TEXT},
                             headers={**token, "Prefer": "respond-async"}, timeout=60)
            r.raise_for_status()
            ids.append(r.json()["id"])
            time.sleep(PICKUP_PAUSE)
    _outgoing_statuses(url, settle_s=30.0)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT created_at, accepted_at FROM messages WHERE id IN "
                                        f"({', '.join(str(int(i)) for i in ids)})")).all()
    finally:
        engine.dispose()
    return [(_as_datetime(a) - _as_datetime(c)).total_seconds() * 1000 for c, a in rows if a is not None]


def _outgoing_statuses(url: str, settle_s: float) -> dict:
    """The outgoing messages by status, once none is queued (or after ``settle_s``)."""
    engine = sa.create_engine(url)
    try:
        deadline = time.monotonic() + settle_s
        while True:
            with engine.connect() as conn:
                counts = dict(conn.execute(sa.text(
                    "SELECT status, count(*) FROM messages WHERE direction = 'out' GROUP BY status")).all())
            if not counts.get("queued") or time.monotonic() > deadline:
                return counts
            time.sleep(0.1)
    finally:
        engine.dispose()


def drain(backend: str) -> dict:
    with throwaway_database(backend, "outbox") as url:
        create_product_schema(url)
        token = {"Authorization": f"Bearer {make_token(url)}"}
        # Wazzup is "down": a port we hold bound but never listen on refuses connections, and no
        # other process on this shared machine can take it while the backlog is being built.
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        sandbox_url = f"http://127.0.0.1:{port}"
        env = product_env(url, api_url=sandbox_url, WAZZUP24_API_KEY=SANDBOX_KEY,
                          WAZZUP24_RATE_LIMIT=str(OUR_LIMIT), WAZZUP24_RATE_WINDOW=str(OUR_WINDOW))
        with Server(PRODUCT_APP, env, name=f"outbox-{backend}", ready_path="/api/health") as server:
            chats = make_chats(server.url, token, 8)
            answers: dict[int, int] = {}
            with requests.Session() as http:
                for i in range(BACKLOG):  # Wazzup is unreachable: stored, answered 202, retried later
                    r = http.post(f"{server.url}/api/chats/{chats[i % CHATS]}/wazzup24/send", json={"text": TEXT},
                                  headers=token, timeout=60)
                    answers[r.status_code] = answers.get(r.status_code, 0) + 1
        holder.close()
        sandbox, _ = start_sandbox(port, SANDBOX_LIMIT, OUR_WINDOW)
        workers = []
        try:
            workers = [Background([sys.executable, "-m", "host_stub", "wazzup24", "worker", "--poll", "0.2"], env,
                                  name=f"outbox-worker-{n}") for n in range(2)]
            started = time.monotonic()
            deadline = started + BACKLOG / OUR_LIMIT * 4 + 60
            engine = sa.create_engine(url)
            waiting = BACKLOG
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    waiting = conn.execute(sa.text(
                        "SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'queued'")).scalar_one()
                if waiting == 0:
                    break
                time.sleep(0.2)
            with engine.connect() as conn:
                stamps = sorted(r[0] for r in conn.execute(sa.text(
                    "SELECT accepted_at FROM messages WHERE direction = 'out' AND accepted_at IS NOT NULL")))
                by_status = {f"{status}{' ' + code if code else ''}": n for status, code, n in conn.execute(sa.text(
                    "SELECT status, error_code, count(*) FROM messages WHERE direction = 'out' "
                    "GROUP BY status, error_code")).all()}
            engine.dispose()
            received = requests.get(sandbox_url + "/_sandbox/received", timeout=10).json()
        finally:
            for w in workers:
                w.stop()
            sandbox.stop()
    stamps = [_as_datetime(s) for s in stamps]
    span = (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else None
    return {"answers": answers, "left": waiting, "by_status": by_status, "accepted": len(stamps),
            "rate": (len(stamps) - 1) / span if span else None, "span": span,
            "sandbox_429": received.get("outcomes", {}).get("429", 0), "sandbox_total": received.get("total")}


def _as_datetime(value):
    from datetime import datetime

    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def section(args) -> Section:
    sec = Section("Send", intro=(
        f"Overhead: {SENDS} sends through our endpoint and {SENDS} direct `requests` POSTs to the sandbox's "
        f"`/v3/message`, interleaved, one client, after {WARMUP} warm-up pairs; the product under gunicorn "
        f"(2 sync workers), the sandbox as `helpdesk-stub wazzup24 sandbox`. Each round also posts the same "
        "JSON to a bare Falcon app under gunicorn: the hop to any endpoint of ours. The design answers the "
        "agent with Wazzup's verdict, so our endpoint's floor is the direct POST plus that hop (`floor ratio`); "
        "`ours beyond the floor` is what our endpoint adds to it (validation, two commits, the answer). "
        "Each round also sends with `Prefer: respond-async`: answered 202 once the message is stored, and "
        "sent by the outbox worker, which is started after the rounds (so that it never runs beside them) "
        "and must get every one of them accepted. "
        f"Pickup: then {PICKUPS} respond-async sends, one every {PICKUP_PAUSE:g} s, to a worker started as "
        "the product starts it (`wazzup24 worker`, its default poll of 1 s), idle when each comes; per message, "
        "the time from being stored to Wazzup's acceptance, both stamped by the product. "
        f"Outbox: a backlog of {BACKLOG} "
        f"sends stored while Wazzup was unreachable, drained by 2 outbox worker processes with our limit at "
        f"{OUR_LIMIT} per {OUR_WINDOW:g} s and the sandbox enforcing {SANDBOX_LIMIT} per {OUR_WINDOW:g} s "
        "(Wazzup's 500 to our default 450, scaled down to keep the run short)."))
    over_rows, drain_rows, pickup_rows = [], [], []
    for backend in backends(args.db):
        o = overhead(backend)
        d50, d99 = percentile(o["direct"], 50), percentile(o["direct"], 99)
        u50, u99 = percentile(o["ours"], 50), percentile(o["ours"], 99)
        h50, h99 = percentile(o["hop"], 50), percentile(o["hop"], 99)
        over_rows.append(Row(f"{backend} · direct POST to the sandbox", {"p50 ms": d50, "p99 ms": d99}))
        over_rows.append(Row(f"{backend} · bare Falcon POST (the hop)", {"p50 ms": h50, "p99 ms": h99}))
        over_rows.append(Row(f"{backend} · floor: direct + hop", {
            "p50 ms": d50 + h50, "p50 ratio": ratio(d50 + h50, d50)}))
        over_rows.append(Row(f"{backend} · our send endpoint", {
            "p50 ms": u50, "p99 ms": u99, "p50 ratio": ratio(u50, d50), "p99 ratio": ratio(u99, d99),
            "overhead p50 ms": u50 - d50, "overhead p99 ms": u99 - d99,
            "ours beyond the floor p50 ms": u50 - d50 - h50}))
        a50, a99 = percentile(o["async"], 50), percentile(o["async"], 99)
        over_rows.append(Row(f"{backend} · our send endpoint, Prefer: respond-async", {
            "p50 ms": a50, "p99 ms": a99, "p50 ratio": ratio(a50, d50), "p99 ratio": ratio(a99, d99),
            "overhead p50 ms": a50 - d50, "overhead p99 ms": a99 - d99}))
        sec.targets.append(Target(f"{backend}: send p50 ≤ 2 × direct p50 (answer with Wazzup's verdict)",
                                  ratio(u50, d50), 2.0, at_least=False))
        sec.targets.append(Target(f"{backend}: send p50 ≤ 2 × direct p50 (Prefer: respond-async)",
                                  ratio(a50, d50), 2.0, at_least=False))
        expected = {"direct": " 201", "ours": " 201", "async": " 202"}
        unexpected = {k: v for k, v in o["statuses"].items() if not k.endswith(expected[k.split()[0]])}
        if unexpected:
            sec.notes.append(f"{backend} overhead: unexpected answers: {unexpected}")
        p50, p99 = percentile(o["pickup"], 50), percentile(o["pickup"], 99)
        pickup_rows.append(Row(backend, {"messages": len(o["pickup"]), "p50 ms": p50, "p99 ms": p99,
                                         "direct POST p50 ms": d50}))
        if len(o["pickup"]) != PICKUPS:
            sec.notes.append(f"{backend} pickup: {PICKUPS - len(o['pickup'])} of {PICKUPS} sends not accepted")
        sent = (WARMUP + SENDS) * 2
        if o["outcomes"].get("accepted", 0) != sent:
            sec.notes.append(f"{backend} overhead: of {sent} sends, by status: {o['outcomes']}")
        r = drain(backend)
        drain_rows.append(Row(backend, {
            "backlog": BACKLOG, "answered 202": r["answers"].get(202, 0), "accepted": r["accepted"],
            "left queued": r["left"], "drain s": r["span"], "msg/s": r["rate"],
            "% of our limit": (r["rate"] or 0) / (OUR_LIMIT / OUR_WINDOW) * 100, "429s": r["sandbox_429"]}))
        sec.targets.append(Target(f"{backend}: outbox rate ≥ 90 % of the configured limit",
                                  (r["rate"] or 0) / (OUR_LIMIT / OUR_WINDOW) * 100, 90.0, unit=" %"))
        sec.targets.append(Target(f"{backend}: 429 answers while draining", float(r["sandbox_429"]), 0.0,
                                  at_least=False, unit=""))
        if r["by_status"].get("accepted", 0) != BACKLOG:
            sec.notes.append(f"{backend} outbox: final statuses {r['by_status']}; answers to the backlog's sends "
                             f"{r['answers']}")
    sec.tables.append(table(over_rows, ["p50 ms", "p99 ms", "p50 ratio", "p99 ratio", "overhead p50 ms",
                                        "overhead p99 ms", "ours beyond the floor p50 ms"]))
    sec.tables.append(table(pickup_rows, ["messages", "p50 ms", "p99 ms", "direct POST p50 ms"],
                            first="respond-async: stored → accepted, worker idle"))
    sec.tables.append(table(drain_rows, ["backlog", "answered 202", "accepted", "left queued", "drain s", "msg/s",
                                         "% of our limit", "429s"], first="outbox drain"))
    return sec


def main(argv=None) -> int:
    return run_section(__doc__, section, argv)


if __name__ == "__main__":
    sys.exit(main())
