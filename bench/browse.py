"""Browsing a large helpdesk: the chat list, a deep cursor page, a chat's latest 50 messages.

    .venv/bin/python -m bench.browse --db both

Data is generated in bulk (bench/bulk.py): first 10,000 chats and 100,000 messages, measured; then
grown in the same database to 100,000 chats and 1,000,000 messages, measured again. Each page's
p50 is compared with the health endpoint's p50 measured alongside (same server, same moment).
"""

from __future__ import annotations

import base64
import json
import statistics
import sys
import time
from datetime import datetime

import falcon.testing
import requests
import sqlalchemy as sa

from bench import bulk
from bench.common import PRODUCT_APP, build_app, product_env, run_section
from bench.databases import backends, create_product_schema, product_plugin_manager, throwaway_database
from bench.harness import (ROUNDS, Server, WrkResult, alternating_rounds, combine_runs, lua_script, percentile,
                           round_ratios, round_seconds, run_wrk)
from bench.report import Row, Section, Target, ratio, table

SIZES = ((10_000, 100_000), (100_000, 1_000_000))
PAGE = 50
# Latency, not throughput: a few connections keep queueing out of the figures.
BROWSE_CONNECTIONS = 4
WARMUP_SECONDS = 1
IN_PROCESS_WARMUP, IN_PROCESS_CALLS = 20, 200
HOT_CHAT = bulk.HOT_CHAT


def make_token(url: str) -> str:
    from host_stub.auth import create_agent, create_token
    from host_stub.db import make_engine
    from host_stub.models import utcnow

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            agent_id = create_agent(conn, "bench", "bench-password-1", "Bench Agent", utcnow())
            return create_token(conn, agent_id, "bench", utcnow())
    finally:
        engine.dispose()


def _b64_json(cursor: str):
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def _b64(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def deep_cursor(server_url: str, headers: dict, url: str, position: int) -> tuple[str, int]:
    """A chat-list cursor pointing ``position`` chats deep, and the id of the chat that follows it.

    The cursor's layout is the API's business: take a real one from a one-item page and swap the
    sort key of that item for the key of the chat at ``position``.
    """
    first = requests.get(f"{server_url}/api/chats", params={"limit": 1}, headers=headers, timeout=30)
    first.raise_for_status()
    page = first.json()
    item, cursor = page["items"][0], page["next_cursor"]
    engine = sa.create_engine(url)
    chats = bulk.tables(product_plugin_manager())["chats"]
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(chats.c.id, chats.c.last_activity_at)
                                .order_by(chats.c.last_activity_at.desc(), chats.c.id.desc())
                                .offset(position - 1).limit(2)).all()
    finally:
        engine.dispose()
    (deep_id, deep_at), (next_id, _) = rows
    deep_at = deep_at if deep_at.tzinfo else deep_at.replace(tzinfo=bulk.START.tzinfo)
    key = []
    for value in _b64_json(cursor):
        if value == item["id"] and isinstance(value, int):
            key.append(deep_id)
        elif isinstance(value, str) and _is_time(value):
            key.append(deep_at.isoformat())
        else:
            key.append(value)
    cursor = _b64(key)
    check = requests.get(f"{server_url}/api/chats", params={"limit": 1, "cursor": cursor}, headers=headers,
                         timeout=60)
    check.raise_for_status()
    got = check.json()["items"][0]["id"]
    if got != next_id:
        raise RuntimeError(f"deep cursor lands on chat {got}, expected {next_id}")
    return cursor, position


def _is_time(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
        return True
    except ValueError:
        return False


def _get_rounds(server: Server, paths: dict[str, str], headers: dict, args) -> dict[str, list[WrkResult]]:
    """Every path warmed up, then measured in ``ROUNDS`` short runs, the order reversed every other
    round: a page and the health endpoint it is compared with run seconds apart, not a minute."""
    options = dict(connections=min(args.connections, BROWSE_CONNECTIONS), threads=min(args.threads, 2))
    scripts = {name: lua_script("GET", path, headers) for name, path in paths.items()}
    for name, path in paths.items():
        run_wrk(server.url + path, scripts[name], duration=WARMUP_SECONDS, **options)
    runs: dict[str, list[WrkResult]] = {name: [] for name in paths}
    for _, order in alternating_rounds(list(paths), ROUNDS):
        for name in order:
            runs[name].append(run_wrk(server.url + paths[name], scripts[name], duration=round_seconds(args), **options))
    return runs


def over_health(runs: dict[str, list[WrkResult]], name: str) -> list[float]:
    """A page's p50 over the health endpoint's p50, round by round."""
    return round_ratios(runs[name], runs["health"], "p50_ms")


def measure(backend: str, args) -> dict:
    results = {}
    pm = product_plugin_manager()
    with throwaway_database(backend, "browse") as url:
        create_product_schema(url)
        token = make_token(url)
        headers = {"Authorization": f"Bearer {token}"}
        done_chats = done_messages = 0
        for step, (n_chats, n_messages) in enumerate(SIZES, start=1):
            seconds = bulk.grow(url, pm, (done_chats + 1, n_chats), (done_messages + 1, n_messages), n_chats, step)
            done_chats, done_messages = n_chats, n_messages
            with Server(PRODUCT_APP, product_env(url), name=f"browse-{backend}", ready_path="/api/health") as server:
                cursor, depth = deep_cursor(server.url, headers, url, n_chats // 2)
                paths = {
                    "health": "/api/health",
                    "chat list, first page": f"/api/chats?limit={PAGE}",
                    "chat list, cursor page": f"/api/chats?limit={PAGE}&cursor={cursor}",
                    "a chat's latest 50 messages": f"/api/chats/{HOT_CHAT}/messages?limit={PAGE}",
                }
                runs = _get_rounds(server, paths, headers, args)
                for name in paths:
                    results[(n_chats, name)] = combine_runs(runs[name])
                    results[(n_chats, name, "over health")] = over_health(runs, name)
            results.update({(n_chats, name, "in-process"): ms for name, ms in in_process(url, paths, headers).items()})
            results[(n_chats, "generated in")] = seconds
            results[(n_chats, "depth")] = depth
    return results


def in_process(url: str, paths: dict[str, str], headers: dict) -> dict[str, float]:
    """p50 (ms) of each path called through Falcon's test client in this process: the server's own work
    without the network, the workers' queue or wrk, so it moves far less with the machine's load."""
    app = build_app(url)
    client = falcon.testing.TestClient(app)
    calls = {name: path.partition("?")[::2] for name, path in paths.items()}
    samples: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for _ in range(IN_PROCESS_WARMUP):
            for route, query in calls.values():
                client.simulate_get(route, query_string=query, headers=headers)
        # Round-robin, one call of each path per round: the machine's speed in that minute weighs on
        # every path alike, so a page's p50 over health's p50 is the page's own cost.
        for _ in range(IN_PROCESS_CALLS):
            for name, (route, query) in calls.items():
                start = time.perf_counter()
                result = client.simulate_get(route, query_string=query, headers=headers)
                samples[name].append((time.perf_counter() - start) * 1000)
                if result.status_code != 200:
                    raise RuntimeError(f"{paths[name]}: {result.status}")
    finally:
        app.helpdesk.db.engine.dispose()
    return {name: percentile(values, 50) for name, values in samples.items()}


PAGES = ("chat list, first page", "chat list, cursor page", "a chat's latest 50 messages")


def section(args) -> Section:
    small, large = SIZES[0][0], SIZES[-1][0]
    sec = Section("Browse", intro=(
        f"The product's API over gunicorn (2 sync workers), wrk {min(args.connections, BROWSE_CONNECTIONS)} "
        f"connections, pages of {PAGE}; each path (health included) in {ROUNDS} rounds of {round_seconds(args):g} s, "
        "the order reversed every other round: a path's req/s is over all its rounds, its p50 and p99 the median "
        "of its rounds', and its p50 over health's the median of the rounds' own ratios (min-max beside it). "
        "Data generated in bulk: "
        + ", then ".join(f"{c:,} chats / {m:,} messages" for c, m in SIZES)
        + f" in the same database (a tenth of the messages in 100 busy chats; the messages page reads "
          f"chat {HOT_CHAT}, one of them). The cursor page starts half-way down the list. PostgreSQL is "
          "ANALYZEd after loading (autovacuum would do it shortly); SQLite is left as the product leaves it."))
    for backend in backends(args.db):
        r = measure(backend, args)
        rows = []
        for n_chats, n_messages in SIZES:
            for name in ("health", *PAGES):
                w = r[(n_chats, name)]
                rounds = r[(n_chats, name, "over health")]
                rows.append(Row(f"{n_chats:,} chats · {name}", {
                    "req/s": w.rps, "p50 ms": w.p50_ms, "p99 ms": w.p99_ms,
                    "p50 / health p50": statistics.median(rounds),
                    "rounds min-max": f"{min(rounds):.2f}-{max(rounds):.2f}",
                    "in-process p50 ms": r[(n_chats, name, "in-process")],
                    "non-2xx": w.non2xx + w.socket_errors}))
        sec.tables.append(f"**{backend}** (generated in "
                          + ", ".join(f"{r[(c, 'generated in')]:.0f} s" for c, _ in SIZES) + ")\n\n"
                          + table(rows, ["req/s", "p50 ms", "p99 ms", "p50 / health p50", "rounds min-max",
                                         "in-process p50 ms", "non-2xx"]))
        growth_rows = []
        for name in PAGES:
            own = {n: ratio(r[(n, name, "in-process")], r[(n, "health", "in-process")]) for n in (small, large)}
            g = ratio(own[large], own[small])
            growth_rows.append(Row(name, {
                "in-process p50 growth, over health's": g,
                "in-process p50 growth": ratio(r[(large, name, "in-process")], r[(small, name, "in-process")]),
                "in-process health growth": ratio(r[(large, "health", "in-process")],
                                                  r[(small, "health", "in-process")]),
                "wrk p50 growth": ratio(r[(large, name)].p50_ms, r[(small, name)].p50_ms),
                "wrk health p50 growth": ratio(r[(large, "health")].p50_ms, r[(small, "health")].p50_ms)}))
            sec.targets.append(Target(f"{backend}: {name} p50 ≤ 3 × health p50 at {large:,} chats",
                                      statistics.median(r[(large, name, "over health")]), 3.0, at_least=False))
            sec.targets.append(Target(f"{backend}: {name} growth {small:,} → {large:,} chats (in-process p50 "
                                      "over health's)", g, 1.5, at_least=False))
        sec.tables.append(table(growth_rows, ["in-process p50 growth, over health's", "in-process p50 growth",
                                              "in-process health growth", "wrk p50 growth", "wrk health p50 growth"],
                                first=f"{backend}: growth {small:,} → {large:,} chats"))
        for key, w in r.items():
            if isinstance(w, WrkResult) and not w.ok:
                sec.notes.append(f"{backend} {key}: {w.non2xx} non-2xx, {w.socket_errors} socket errors.")
    sec.notes.append("Growth is a page's p50 at the large size over its p50 at the small size. The verdict uses "
                     f"the in-process p50 ({IN_PROCESS_CALLS} rounds through Falcon's test client right after the "
                     "wrk runs, one call of each path per round), taken over the health endpoint's p50 of the "
                     "same rounds: the two sizes are measured minutes apart, and the machine's speed moved by up "
                     "to twice between them (the health endpoint's own growth, shown beside it), which a page's "
                     "raw growth carries and its growth over health's cancels. The wrk p50 also carries the "
                     "shared machine's load of that minute.")
    return sec


def main(argv=None) -> int:
    return run_section(__doc__, section, argv)


if __name__ == "__main__":
    sys.exit(main())
